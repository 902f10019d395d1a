"""The register checker: `check_register(history, consistency)` judges the register workload
key by key, and `RegisterChecker` adds what makes a verdict trustworthy: the Stat checks
(versions.py), final reads of every key, and a summary that names what each anomaly proves.

Result shape (JSON-ready; per-key results use the same fields):

    {"valid": True | False | "unknown",
     "explanation": one sentence (the first violation, or why the verdict is unknown),
     "summary": [{"classification", "count", "zookeeper": "allowed" | "violation"}], violations first,
     "anomalies": [{"type": "stale-read" | "lost-write" | "read-went-back" | ...,
                    "key", "op": the op's completion record (+ "invoke_index"),
                    "values": the values involved, "explanation", "witnesses": [invoke indices],
                    "zookeeper": "allowed" | "violation" | "unknown", "classification": str}],
     "failure": {"key", "op", "prefix", "values"}          # when invalid: the first bad op
     "keys": {key: {"valid", "method": "direct" | "search", "anomalies", "explanation",
                    "first_bad", "prefix", "values", "reason" (when unknown), "stats",
                    "final_read": True (one succeeded) | False (tried, none did) | None (none tried)}},
     "stats": {"keys", "skipped_ops", "time_s", "anomalies"},
     "consistency": "linearizable" | "zookeeper",
     "only_stale_reads_allowed_by_zookeeper": bool}        # linearizable mode, when invalid

"prefix" is {"description", "length", "tail": invoke indices of the last ops of a linearization
of everything before the first bad op, "state": the register's value after it}. Violations are
listed before the stale reads ZooKeeper's model allows (those are listed too, marked "allowed").
"""

from __future__ import annotations

import time
from typing import Any, Iterable, Mapping

from ..core import merge, summarise
from ..history import HistoryError, pair_ops, paused_gc
from ..parallel import fork_map, jobs
from .findings import CLASSIFICATION, finding_dict
from .linearizable import analyse_key, verdict_dict
from .ops import partition_register, reduce_key_ops
from .versions import version_findings
from .zookeeper import analyse_key_zookeeper, zookeeper_dict

CONSISTENCY_MODELS = ("linearizable", "zookeeper")
# Classifying a linearizability violation under ZooKeeper's model is a courtesy: bound it.
ANNOTATE_TIME_S = 5.0
ANNOTATE_STATES = 200_000
STATE_OVERHEAD_BYTES = 200  # per memoized configuration, besides its bitset of ops


def state_budget(n_ops: int, max_states: int | None, max_memory_mb: float | None) -> int | None:
    """The search memoizes configurations; each holds a bitset over the key's ops."""
    if max_memory_mb is None:
        return max_states
    by_memory = int(max_memory_mb * 2**20 / (n_ops / 8 + STATE_OVERHEAD_BYTES))
    return by_memory if max_states is None else min(max_states, by_memory)


def check_register(
    history: Iterable[Mapping],
    consistency: str = "linearizable",
    time_limit: float | None = 60.0,
    max_states: int | None = 1_000_000,
    max_memory_mb: float | None = 1024,
) -> dict:
    """Check a register-workload history.

    `time_limit` (seconds, whole check), `max_states` (search configurations per key) and
    `max_memory_mb` (what those configurations may take, per key) bound the search; a key that
    runs out is "unknown" with the reason. The direct analyses (unique values) always finish.
    """
    if consistency not in CONSISTENCY_MODELS:
        raise ValueError(f"consistency must be one of {CONSISTENCY_MODELS}, not {consistency!r}")
    with paused_gc():
        return _check_register(history, consistency, time_limit, max_states, max_memory_mb)


def _check_register(history: Iterable[Mapping], consistency: str, time_limit: float | None,
                    max_states: int | None, max_memory_mb: float | None) -> dict:
    started = time.perf_counter()
    deadline = None if time_limit is None else started + time_limit
    try:
        by_key, skipped = partition_register(pair_ops(history))
    except HistoryError as err:
        return {"valid": "unknown", "anomalies": [], "explanation": f"malformed history: {err}",
                "keys": {}, "stats": {"consistency": consistency}}
    order = sorted(by_key, key=lambda k: (str(type(k)), k))

    def check_key(key: Any) -> dict:
        budget = state_budget(len(by_key[key]), max_states, max_memory_mb)
        kops = reduce_key_ops(by_key[key])
        if consistency == "zookeeper":
            result = zookeeper_dict(key, analyse_key_zookeeper(kops, deadline=deadline, max_states=budget), deadline)
        else:
            verdict = analyse_key(kops, deadline=deadline, max_states=budget)
            result = verdict_dict(key, verdict, deadline)
            if verdict.valid is False:
                _annotate_with_zookeeper(key, result, by_key[key], deadline, budget)
        _add_version_findings(key, result, kops)
        result["final_read"] = kops.final_read
        return result

    # Keys are independent: they are checked on every core (the search's budgets are per key).
    sizes = [len(by_key[k]) for k in order]
    results = fork_map(check_key, order, sizes, jobs(2 * sum(sizes)))  # two records per op
    keys: dict[Any, dict] = dict(zip(order, results))
    out = _combine(keys, consistency)
    out["stats"].update({"keys": len(keys), "skipped_ops": skipped, "time_s": round(time.perf_counter() - started, 4)})
    return out


def _add_version_findings(key: Any, result: dict, kops) -> None:
    """The Stat checks prove their anomalies under either model: violations, listed first."""
    found = version_findings(kops)
    if not found:
        return
    extra = [finding_dict(key, f, {"zookeeper": "violation", "classification": CLASSIFICATION[f.kind]})
             for f in found]
    result["anomalies"] = extra + result.get("anomalies", [])
    if result.get("valid") is not False:
        result["first_bad"] = extra[0]["op"]
        result["values"] = extra[0]["values"]
    result["valid"] = False
    result["explanation"] = (f"key {key}: {CLASSIFICATION[found[0].kind]}: {found[0].explanation}"
                             + (f" ({len(found) - 1} more from the Stat checks)" if len(found) > 1 else ""))
    result["only_stale_reads_allowed_by_zookeeper"] = False


def _annotate_with_zookeeper(key: Any, result: dict, ops: list, deadline: float | None,
                             max_states: int | None) -> None:
    """Under --consistency linearizable, still say whether each violation is only a stale read
    that ZooKeeper's model allows."""
    limit = time.perf_counter() + ANNOTATE_TIME_S
    limit = limit if deadline is None else min(limit, deadline)
    states = ANNOTATE_STATES if max_states is None else min(max_states, ANNOTATE_STATES)
    zk = zookeeper_dict(key, analyse_key_zookeeper(ops, deadline=limit, max_states=states), prefix=False)
    by_op = {a["op"]["invoke_index"]: a for a in zk["anomalies"]}
    for anomaly in result["anomalies"]:
        match = by_op.get(anomaly["op"]["invoke_index"])
        if match is not None:
            anomaly["zookeeper"] = match["zookeeper"]
            anomaly["classification"] = match["classification"]
        elif zk["valid"] == "unknown":
            anomaly["zookeeper"] = "unknown"
            anomaly["classification"] = f"not classified: {zk.get('reason', 'unknown')}"
        else:
            anomaly["zookeeper"] = "allowed" if zk["valid"] is True else "violation"
            anomaly["classification"] = CLASSIFICATION.get(anomaly["type"], anomaly["type"])
    result["zookeeper_valid"] = zk["valid"]
    result["only_stale_reads_allowed_by_zookeeper"] = zk["valid"] is True and all(
        a["zookeeper"] == "allowed" for a in result["anomalies"])


def _combine(keys: dict[Any, dict], consistency: str) -> dict:
    out = merge(keys.values())
    out["stats"] = {"anomalies": out.pop("anomaly_count")}
    bad = [(k, r) for k, r in keys.items() if r["valid"] is False]
    if bad:
        key, first = min(bad, key=lambda kr: (kr[1]["first_bad"]["index"], str(kr[0])))
        out["failure"] = {"key": key, "op": first["first_bad"], "prefix": first.get("prefix"),
                          "values": first.get("values")}
        out["explanation"] = first["explanation"] + (f" ({len(bad)} keys invalid)" if len(bad) > 1 else "")
    elif out["valid"] == "unknown":
        unknown = [k for k, r in keys.items() if r["valid"] == "unknown"]
        out["explanation"] = f"{len(unknown)} keys unknown: " + keys[unknown[0]]["explanation"]
    else:
        out["explanation"] = f"all {len(keys)} keys are {consistency == 'zookeeper' and 'ZooKeeper-consistent' or 'linearizable'}"
    if consistency == "linearizable" and bad:
        out["only_stale_reads_allowed_by_zookeeper"] = all(
            r.get("only_stale_reads_allowed_by_zookeeper") for _, r in bad)
    out["summary"] = summarise(a for r in keys.values() for a in r.get("anomalies", ()))
    out["keys"] = keys
    out["consistency"] = consistency
    return out


def missing_final_reads(result: Mapping[str, Any]) -> list[Any]:
    """Keys no final read succeeded on, when the history has final reads at all. Without one
    a lost write can look like a stale read ZooKeeper allows, so the verdict cannot be valid."""
    keys = result.get("keys", {})
    if all(r.get("final_read") is None for r in keys.values()):
        return []
    return sorted((k for k, r in keys.items() if r.get("final_read") is not True), key=str)


class RegisterChecker:
    """The register workload's checker under --consistency zookeeper|linearizable."""

    def __init__(self, consistency: str = "zookeeper", time_limit: float | None = 60.0) -> None:
        self.consistency = consistency
        self.time_limit = time_limit

    def check(self, history: list[dict], options: Mapping[str, Any]) -> dict:
        out = check_register(history, consistency=self.consistency, time_limit=self.time_limit)
        missing = missing_final_reads(out)
        if missing and out.get("valid") is True:
            out["valid"] = "unknown"
            out["explanation"] = (f"no successful final read of key(s) {', '.join(map(str, missing))}: "
                                  "a lost write cannot be ruled out")
        if out.get("valid") is False and out.get("only_stale_reads_allowed_by_zookeeper"):
            out["explanation"] += (" Every violation is a stale read, which ZooKeeper's own model allows (its reads"
                                   " are not linearizable): under --consistency zookeeper this history is valid.")
        return out
