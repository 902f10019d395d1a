"""The register's Stat checks: what the (version, mzxid) every write and read reports proves,
under either consistency model, whatever overwrote the key afterwards."""

from __future__ import annotations

import json

import pytest

from harness.checkers.register import RegisterChecker, check_register

from .builder import History

E1, E2 = 1 << 32, 2 << 32  # zxids of epochs 1 and 2


def kinds(result: dict) -> list[str]:
    return [a["type"] for a in result["anomalies"] if a.get("zookeeper") != "allowed"]


@pytest.mark.parametrize("consistency", ["zookeeper", "linearizable"])
def test_consistent_stats_are_valid(consistency: str) -> None:
    h = (History().write(0, 1, 1, stat=(0, E1 + 1)).write(1, 1, 2, stat=(1, E1 + 2))
         .read(0, 1, 2, stat=(1, E1 + 2)).cas(1, 1, 2, 3, stat=(2, E2 + 1)).read(2, 1, 3, stat=(2, E2 + 1)))
    result = check_register(h.records, consistency)
    json.dumps(result)
    assert result["valid"] is True, result["explanation"]


@pytest.mark.parametrize("consistency", ["zookeeper", "linearizable"])
def test_a_write_whose_version_a_later_txn_took_was_lost(consistency: str) -> None:
    # An isolated leader acknowledges 2 as version 1 in epoch 1; the majority's new leader gives
    # version 1 to 3. Reads of 3 are all ZooKeeper allows to see: without the Stat, 2 just looks
    # like a write that stale reads missed and was later overwritten.
    h = (History().write(0, 1, 1, stat=(0, E1 + 1))
         .invoke(1, "write", 1, 2).invoke(2, "write", 1, 3)
         .ok(1, stat=(1, E1 + 2)).ok(2, stat=(1, E2 + 1))
         .read(0, 1, 3, stat=(1, E2 + 1)))
    result = check_register(h.records, consistency)
    assert result["valid"] is False
    lost = [a for a in result["anomalies"] if a["type"] == "lost-write"]
    assert len(lost) == 1 and lost[0]["op"]["value"]["value"] == 2
    assert lost[0]["zookeeper"] == "violation" and lost[0]["classification"] == "lost write"
    assert "not in the node's history" in lost[0]["explanation"]
    assert result["summary"][0] == {"classification": "lost write", "count": 1, "zookeeper": "violation"}


def test_a_later_txn_with_a_lower_version_shows_several_writes_lost() -> None:
    h = (History().write(0, 1, 1, stat=(0, E1 + 1)).write(0, 1, 2, stat=(1, E1 + 2))
         .write(0, 1, 3, stat=(2, E1 + 3)).write(1, 1, 4, stat=(1, E2 + 1)))
    result = check_register(h.records, "zookeeper")
    lost = sorted(a["op"]["value"]["value"] for a in result["anomalies"] if a["type"] == "lost-write")
    assert lost == [2, 3]


def test_a_read_of_a_write_that_never_committed() -> None:
    # A follower served a proposal (4, from a write that timed out) that the new epoch discarded.
    h = (History().write(0, 1, 1, stat=(0, E1 + 1))
         .invoke(1, "write", 1, 4).info(1)
         .read(2, 1, 4, stat=(1, E1 + 2))
         .write(0, 1, 5, stat=(1, E2 + 1)).read(2, 1, 5, stat=(1, E2 + 1)))
    result = check_register(h.records, "zookeeper")
    assert result["valid"] is False
    assert "read-of-uncommitted-write" in kinds(result)
    assert {"classification": "read of a write that never committed", "count": 1,
            "zookeeper": "violation"} in result["summary"]


def test_an_indeterminate_write_that_took_effect_is_fine() -> None:
    h = (History().write(0, 1, 1, stat=(0, E1 + 1)).invoke(1, "write", 1, 2).info(1)
         .read(2, 1, 2, stat=(1, E1 + 2)).write(0, 1, 3, stat=(2, E2 + 1)))
    assert check_register(h.records, "zookeeper")["valid"] is True


def test_a_read_must_report_the_stat_its_write_was_acknowledged_with() -> None:
    h = History().write(0, 1, 1, stat=(0, E1 + 1)).read(1, 1, 1, stat=(0, E1 + 7))
    result = check_register(h.records, "zookeeper")
    assert "stat-mismatch" in kinds(result)


def test_one_txn_reported_as_two_states() -> None:
    h = History().write(0, 1, 1, stat=(0, E1 + 1)).write(0, 1, 2, stat=(1, E1 + 2)).read(1, 1, 1, stat=(1, E1 + 2))
    assert "zxid-reused" in kinds(check_register(h.records, "zookeeper"))


def test_histories_without_stats_are_judged_as_before() -> None:
    h = History().write(0, 1, 1).write(1, 1, 2).read(0, 1, 2)
    assert check_register(h.records, "zookeeper")["valid"] is True


def test_lost_writes_are_never_called_stale_reads_zookeeper_allows() -> None:
    h = (History().write(0, 1, 1, stat=(0, E1 + 1)).write(1, 1, 2, stat=(1, E1 + 2))
         .write(2, 1, 3, stat=(1, E2 + 1)).read(0, 1, 1, stat=(0, E1 + 1))
         .invoke(9, "read", 1, final=True).ok(9, 3, stat=(1, E2 + 1)))
    result = RegisterChecker("linearizable").check(h.records, {})
    assert result["valid"] is False
    assert not result.get("only_stale_reads_allowed_by_zookeeper")
    assert "ZooKeeper's own model allows" not in result["explanation"]
    assert result["summary"][0]["classification"] == "lost write"


def test_a_key_without_a_successful_final_read_leaves_the_verdict_unknown() -> None:
    # Without a final read a lost write can pass for a stale read ZooKeeper allows.
    h = (History().write(0, 1, 1).write(0, 2, 5)
         .read(1, 1, 1, final=True).invoke(1, "read", 2, final=True).info(1, final=True))
    result = RegisterChecker("zookeeper").check(h.records, {})
    assert result["valid"] == "unknown"
    assert "no successful final read of key(s) 2" in result["explanation"]
    assert [result["keys"][k]["final_read"] for k in (1, 2)] == [True, False]
    h.read(2, 2, 5, final=True)
    assert RegisterChecker("zookeeper").check(h.records, {})["valid"] is True
    no_final_phase = History().write(0, 1, 1).read(1, 1, 1)  # a history with no final phase at all
    assert RegisterChecker("zookeeper").check(no_final_phase.records, {})["valid"] is True
