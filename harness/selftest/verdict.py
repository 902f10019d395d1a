"""Whether a run caught its mutant, and when the bug first showed.

A mutant run is *caught* when the test exits 1 (invalid) with one of the anomaly types the
catalogue expects; *missed* when it exits 0 (the harness found nothing wrong); *unknown*
otherwise (no verdict, a harness failure, or invalid for some other reason, which the matrix
shows but does not count as proof). A mutant's cell is caught only when every run caught it:
a bug found one time in three is not a bug the harness reliably finds. A control run of the
unchanged server must be valid.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Mapping

from harness.exits import EXIT_INVALID, EXIT_VALID

CAUGHT, MISSED, UNKNOWN = "caught", "missed", "unknown"
VALID, INVALID = "valid", "invalid"


def anomalies(results: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Every anomaly the results hold: the lifted list and each checker's own (each is capped,
    so the parts can hold kinds the top list dropped)."""
    yield from results.get("anomalies") or ()
    for part in results.values():
        if isinstance(part, Mapping):
            yield from part.get("anomalies") or ()


def kinds(results: Mapping[str, Any]) -> set[str]:
    """Every anomaly type the results name, what the model allows included (shown, not judged)."""
    return {a["type"] for a in anomalies(results) if isinstance(a, Mapping) and "type" in a}


def violations(results: Mapping[str, Any]) -> set[str]:
    """The anomaly types that made the run invalid: those ZooKeeper's model forbids, and under a
    checker run with --consistency linearizable every one of its own."""
    def counted(a: Any, consistency: Any) -> bool:
        return isinstance(a, Mapping) and "type" in a and (a.get("zookeeper") != "allowed"
                                                           or consistency == "linearizable")

    found = {a["type"] for a in results.get("anomalies") or () if counted(a, None)}
    for part in results.values():
        if isinstance(part, Mapping):
            found |= {a["type"] for a in part.get("anomalies") or () if counted(a, part.get("consistency"))}
    return found


def mutant_status(exit_code: int, found: set[str], expects: Iterable[str]) -> str:
    """`found`: the violations the run reported (an expected type the model allows proves nothing)."""
    if exit_code == EXIT_INVALID and found & set(expects):
        return CAUGHT
    if exit_code == EXIT_VALID:
        return MISSED
    return UNKNOWN


def control_status(exit_code: int) -> str:
    return {EXIT_VALID: VALID, EXIT_INVALID: INVALID}.get(exit_code, UNKNOWN)


def combined(statuses: list[str], good: str, bad: str) -> str:
    """One cell from several runs: `good` only if every run was, `bad` if any run was."""
    if statuses and all(s == good for s in statuses):
        return good
    return bad if bad in statuses else UNKNOWN


def first_anomaly_s(results: Mapping[str, Any], times_ns: Mapping[int, int],
                    only: Iterable[str] | None = None) -> float | None:
    """Seconds from the workload's first op to the first anomalous op: for each anomaly (of the
    types in `only`, when given) the op it is about (its `op`, else the first of its `ops`, else
    for a watch anomaly the `change` it concerns), placed by its history record's time.
    `times_ns` maps each history record's index to its time."""
    wanted = set(only) if only is not None else None
    best: int | None = None
    for a in anomalies(results):
        if wanted is not None and a.get("type") not in wanted:
            continue
        op = a.get("op") or next(iter(a.get("ops") or ()), None) or a.get("change")
        if not isinstance(op, Mapping):
            continue
        t = op.get("time_ns", times_ns.get(op.get("index")))
        if isinstance(t, int) and (best is None or t < best):
            best = t
    start = min(times_ns.values(), default=0)
    return None if best is None else (best - start) / 1e9
