"""Checkers: pure functions from a history (a list of op records) to a result dict.

`check_register(history, consistency="linearizable"|"zookeeper")` checks the register workload
key by key; `merge(results)` composes results (False beats "unknown" beats True).

Result shape (JSON-ready; per-key results use the same fields):

    {"valid": True | False | "unknown",
     "explanation": one sentence (the first violation, or why the verdict is unknown),
     "anomalies": [{"type": "stale-read" | "lost-write" | "read-went-back" | ...,
                    "key", "op": the op's completion record (+ "invoke_index"),
                    "values": the values involved, "explanation", "witnesses": [invoke indices],
                    "zookeeper": "allowed" | "violation" | "unknown", "classification": str}],
     "failure": {"key", "op", "prefix", "values"}          # when invalid: the first bad op
     "keys": {key: {"valid", "method": "direct" | "search", "anomalies", "explanation",
                    "first_bad", "prefix", "values", "reason" (when unknown), "stats"}},
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

from .findings import CLASSIFICATION
from .history import HistoryError, pair_ops, partition_register
from .linearizable import analyse_key, verdict_dict
from .zookeeper import analyse_key_zookeeper, zookeeper_dict

__all__ = ["check_register", "merge", "HistoryError"]

CONSISTENCY_MODELS = ("linearizable", "zookeeper")
MAX_REPORTED_ANOMALIES = 200  # per result; the per-key entries keep all of theirs
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
    started = time.perf_counter()
    deadline = None if time_limit is None else started + time_limit
    try:
        by_key, skipped = partition_register(pair_ops(history))
    except HistoryError as err:
        return {"valid": "unknown", "anomalies": [], "explanation": f"malformed history: {err}",
                "keys": {}, "stats": {"consistency": consistency}}
    keys: dict[Any, dict] = {}
    for key in sorted(by_key, key=lambda k: (str(type(k)), k)):
        budget = state_budget(len(by_key[key]), max_states, max_memory_mb)
        if consistency == "zookeeper":
            keys[key] = zookeeper_dict(key, analyse_key_zookeeper(by_key[key], deadline=deadline,
                                                                  max_states=budget), deadline)
            continue
        verdict = analyse_key(by_key[key], deadline=deadline, max_states=budget)
        result = verdict_dict(key, verdict, deadline)
        if verdict.valid is False:
            _annotate_with_zookeeper(key, result, by_key[key], deadline, budget)
        keys[key] = result
    out = _combine(keys, consistency)
    out["stats"].update({"keys": len(keys), "skipped_ops": skipped, "time_s": round(time.perf_counter() - started, 4)})
    return out


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
    out["keys"] = keys
    out["consistency"] = consistency
    return out


def merge(results: Iterable[Mapping]) -> dict:
    """Compose results: False beats "unknown" beats True; anomalies are concatenated."""
    results = list(results)
    valid: bool | str = True
    anomalies: list = []
    for r in results:
        v = r.get("valid")
        if v is False:
            valid = False
        elif v is not True and valid is True:
            valid = "unknown"  # "unknown", or a result that does not say
        anomalies.extend(r.get("anomalies", ()))
    # what ZooKeeper's model allows is listed too, but after everything else
    anomalies.sort(key=lambda a: a.get("zookeeper") == "allowed")
    out = {"valid": valid, "anomalies": anomalies[:MAX_REPORTED_ANOMALIES], "stats": {"anomalies": len(anomalies)}}
    explanations = [r["explanation"] for r in results if r.get("valid") is not True and r.get("explanation")]
    out["explanation"] = "; ".join(explanations) if explanations else "valid"
    return out
