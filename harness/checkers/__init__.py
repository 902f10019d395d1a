"""Checkers: pure functions from a history (a list of op records) to a result dict.

`core` holds the Checker protocol, `compose` and the verdict; `search` the linearizability
search over a Model; `stats` latency and rate statistics; the other modules check one kind of
object (a register, a set, a counter, a queue, ...) and are what workloads pick from.
"""

from .core import Checker, Compose, FunctionChecker, Verdict, compose, merge
from .history import HistoryError

__all__ = ["Checker", "Compose", "FunctionChecker", "HistoryError", "Verdict", "compose", "merge"]
