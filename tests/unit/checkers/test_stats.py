"""Statistics and fault windows from the nemesis's own records: overlapping families, and a heal
that failed (the fault stays in effect, the run's verdict cannot be trusted)."""

from __future__ import annotations

from harness.checkers.stats import StatsChecker, fault_windows

FAULTS = {"start-partition": "partition", "kill": "kill"}
HEALS = {"stop-partition": "partition", "start": "kill"}


def nemesis(t: int, f: str, error: str | None = None) -> list[dict]:
    return [{"index": 0, "time_ns": t, "process": "nemesis", "type": "invoke", "f": f, "value": None},
            {"index": 0, "time_ns": t + 1, "process": "nemesis", "type": "info", "f": f, "value": None, "error": error}]


def client(t: int, outcome: str = "ok") -> list[dict]:
    return [{"index": 0, "time_ns": t, "process": 0, "type": "invoke", "f": "read", "value": None, "node": "n1"},
            {"index": 0, "time_ns": t + 5, "process": 0, "type": outcome, "f": "read", "value": None, "node": "n1"}]


def history(*parts: list[dict]) -> list[dict]:
    records = [r for part in parts for r in part]
    for i, r in enumerate(records):
        r["index"] = i
    return records


def test_families_overlap_and_each_window_closes_at_its_heal() -> None:
    h = history(nemesis(10, "start-partition"), nemesis(20, "kill"), client(25), nemesis(30, "stop-partition"),
                nemesis(40, "start"), client(50))
    assert fault_windows(h, FAULTS, HEALS) == [(10, 30, "partition"), (20, 40, "kill")]
    result = StatsChecker(FAULTS, HEALS).check(h, {})
    assert result["valid"] is True and result["during_faults"] == {"ok": 1} and result["outside_faults"] == {"ok": 1}


def test_a_failed_heal_leaves_the_fault_in_place_and_the_verdict_unknown() -> None:
    h = history(nemesis(10, "start-partition"), nemesis(30, "stop-partition", error="RuntimeError: n2 unreachable"),
                client(40))
    assert StatsChecker(FAULTS, HEALS).check(h, {})["faults_left"] == ["partition"]
    assert fault_windows(h, FAULTS, HEALS) == [(10, 45, "partition")]  # on to the end
    result = StatsChecker(FAULTS, HEALS).check(h, {})
    assert result["valid"] == "unknown" and "partition" in result["explanation"]
    healed_later = history(h, nemesis(50, "stop-partition"))
    assert "faults_left" not in StatsChecker(FAULTS, HEALS).check(healed_later, {})
    assert StatsChecker(FAULTS, HEALS).check(healed_later, {})["valid"] is True
