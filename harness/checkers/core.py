"""The Checker protocol: a pure function from a history to a result, and how results compose.

A result is a JSON-ready dict with `"valid": True | False | "unknown"` first, then whatever the
checker found (anomalies, explanation, statistics). Inside, verdicts are a small enum; they
become JSON only at the edge. Composing (after Jepsen's `checker/compose`): several checkers over
one history, each result under its name, and a verdict where False beats "unknown" beats True.
"""

from __future__ import annotations

import enum
import math
from collections import Counter
from typing import Any, Iterable, Mapping, Protocol, runtime_checkable

from .history import HistoryError, PairedHistory
from .parallel import fork_map, jobs

History = list[dict[str, Any]]
MAX_REPORTED_ANOMALIES = 200


class Verdict(enum.Enum):
    VALID = True
    INVALID = False
    UNKNOWN = "unknown"

    @classmethod
    def of(cls, value: Any) -> "Verdict":
        """From a result's "valid" field; anything but True or False is unknown."""
        if value is True:
            return cls.VALID
        if value is False:
            return cls.INVALID
        return cls.UNKNOWN

    @classmethod
    def worst(cls, verdicts: Iterable["Verdict"]) -> "Verdict":
        found = set(verdicts)
        for v in (cls.INVALID, cls.UNKNOWN):
            if v in found:
                return v
        return cls.VALID

    @property
    def json(self) -> bool | str:
        return self.value


@runtime_checkable
class Checker(Protocol):
    def check(self, history: History, options: Mapping[str, Any]) -> dict[str, Any]:
        """Judge a history (records in the order they happened) under the test's options."""


class FunctionChecker:
    """A checker from a plain function `(history, options) -> result`."""

    def __init__(self, fn) -> None:
        self.fn = fn

    def check(self, history: History, options: Mapping[str, Any]) -> dict[str, Any]:
        return self.fn(history, options)


class Compose:
    """Several checkers over one history: `{"valid": worst, name: result, ...}`. The
    explanation and anomalies of the parts that are not valid are lifted to the top."""

    def __init__(self, checkers: Mapping[str, Checker]) -> None:
        self.checkers = dict(checkers)

    def check(self, history: History, options: Mapping[str, Any]) -> dict[str, Any]:
        names = list(self.checkers)
        _pair_before_fork(history)
        # The first checker is the workload's: usually as much work as the others together.
        weights = [max(1, len(names) - 1)] + [1] * (len(names) - 1)
        results = fork_map(lambda name: self.checkers[name].check(history, options), names, weights,
                           jobs(len(history)))
        parts = dict(zip(names, results))
        return {**merge(parts.values()), **parts}


def _pair_before_fork(history: History) -> None:
    """Pair a shared history once here, not once in each process the checkers run in."""
    if isinstance(history, PairedHistory):
        try:
            history.ops()
        except HistoryError:
            pass  # each checker reports a malformed history in its own terms


def compose(checkers: Mapping[str, Checker]) -> Compose:
    return Compose(checkers)


def merge(results: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Combine results: the worst verdict; anomalies concatenated (those ZooKeeper's model
    allows listed last); explanations of the parts that are not valid, joined."""
    results = list(results)
    anomalies: list = []
    for r in results:
        anomalies.extend(r.get("anomalies", ()))
    anomalies.sort(key=lambda a: a.get("zookeeper") == "allowed")
    verdict = Verdict.worst(Verdict.of(r.get("valid")) for r in results)
    explanations = [r["explanation"] for r in results if r.get("valid") is not True and r.get("explanation")]
    return {
        "valid": verdict.json,
        "explanation": "; ".join(explanations) if explanations else "valid",
        "anomalies": anomalies[:MAX_REPORTED_ANOMALIES],
        "anomaly_count": len(anomalies),
    }


def summarise(anomalies: Iterable[Mapping]) -> list[dict]:
    """How many anomalies of each kind, by what they prove; violations before what is allowed."""
    counts = Counter((a.get("zookeeper") == "allowed", a.get("classification") or a["type"]) for a in anomalies)
    return [{"classification": what, "count": n, "zookeeper": "allowed" if allowed else "violation"}
            for (allowed, what), n in sorted(counts.items(), key=lambda kv: (kv[0][0], -kv[1], kv[0][1]))]


def _first_record(anomaly: Mapping) -> float:
    op = anomaly.get("op") or next(iter(anomaly.get("ops") or ()), None)
    return op.get("index", math.inf) if isinstance(op, Mapping) else math.inf


def judge(anomalies: list[dict], consistency: str, undecided: str | None, valid_because: str) -> dict[str, Any]:
    """A checker's verdict from its anomalies: invalid on any violation of the chosen model
    (under --consistency linearizable every anomaly counts, even what ZooKeeper allows); else
    unknown when `undecided` says why nothing can be concluded (no final read); else valid.
    Violations are listed first, each group in history order."""
    anomalies.sort(key=lambda a: (a.get("zookeeper") == "allowed", _first_record(a)))
    bad = [a for a in anomalies if consistency == "linearizable" or a.get("zookeeper") != "allowed"]
    if bad:
        more = f" ({len(bad) - 1} more violations)" if len(bad) > 1 else ""
        valid, explanation = False, f"{bad[0]['classification']}: {bad[0]['explanation']}{more}"
    elif undecided:
        valid, explanation = "unknown", undecided
    else:
        valid, explanation = True, valid_because
    return {"valid": valid, "explanation": explanation, "summary": summarise(anomalies),
            "anomalies": anomalies[:MAX_REPORTED_ANOMALIES], "anomaly_count": len(anomalies),
            "consistency": consistency}
