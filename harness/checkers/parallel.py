"""Independent parts of a check (the checkers of a composition, the keys of a register) run on
every core: the parts are shared among processes forked from this one, this process taking one
share, and each result comes back pickled, in the parts' order.

Fork rather than spawn: a forked worker sees the history already read and paired, without
copying or re-reading it. It is used only where fork is safe: a process that runs other threads
(a test still tearing down its clients) checks everything itself, since a lock another thread
held at the fork would stay held in the worker. `ZKCHAOS_CHECK_JOBS` caps the processes
(1: everything in this process).
"""

from __future__ import annotations

import logging
import os
import threading
import traceback
from typing import Callable, Sequence, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")
JOBS_ENV = "ZKCHAOS_CHECK_JOBS"
FORK_MIN_RECORDS = 20_000
FORK_MAX_RECORDS = 600_000  # about 400 MB of records


class WorkerFailed(RuntimeError):
    """A worker process raised, or died before it sent its results. The message is one line (the
    worker's exception); `details` holds the worker's whole traceback."""

    def __init__(self, details: str) -> None:
        lines = details.strip().splitlines()
        super().__init__(lines[-1] if lines else "a worker process failed")
        self.details = details


def jobs(records: int | None = None) -> int:
    """How many processes a check of `records` records may use: the cores this process may run
    on (or the cap), and 1 where forking does not pay. Under FORK_MIN_RECORDS a fork and the
    import of multiprocessing cost more than they save; over FORK_MAX_RECORDS the copies cost too
    much memory: a worker writes the reference count of every record it reads, so each page of
    the history it touches is copied."""
    if records is not None and not FORK_MIN_RECORDS <= records <= FORK_MAX_RECORDS:
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    cap = os.environ.get(JOBS_ENV, "").strip()
    return max(1, min(cores, int(cap))) if cap.isdigit() else cores


def fork_map(fn: Callable[[T], R], items: Sequence[T], weights: Sequence[float] | None = None,
             workers: int | None = None) -> list[R]:
    """`[fn(item) for item in items]`, shared among up to `workers` processes (default: `jobs()`)
    so that each gets about the same total weight (heaviest items first, each to the lightest
    share). An exception in a worker is raised here as WorkerFailed."""
    n = min(workers or jobs(), len(items))
    if n < 2 or threading.active_count() > 1 or not hasattr(os, "fork"):
        return [fn(item) for item in items]
    shares = _shares(weights or [1.0] * len(items), n)
    import multiprocessing  # only here: the import costs more than a small check

    context = multiprocessing.get_context("fork")
    running = []
    for share in shares[1:]:
        receive, send = context.Pipe(duplex=False)
        worker = context.Process(target=_work, args=(fn, [items[i] for i in share], send), daemon=True)
        worker.start()
        send.close()
        running.append((worker, receive))
    results: list = [None] * len(items)
    try:
        for i in shares[0]:
            results[i] = fn(items[i])
    except BaseException:  # the workers' results are of no use now: stop them
        for worker, receive in running:
            worker.terminate()
            worker.join()
            receive.close()
        raise
    for share, (worker, receive) in zip(shares[1:], running):
        outcome = _receive(receive)
        worker.join()
        if isinstance(outcome, str):
            log.debug("a checker worker failed:\n%s", outcome)
            raise WorkerFailed(outcome)
        for i, result in zip(share, outcome):
            results[i] = result
    return results


def _shares(weights: Sequence[float], n: int) -> list[list[int]]:
    """Item positions per process, each share in the items' order; share 0 is the caller's."""
    loads = [0.0] * n
    shares: list[list[int]] = [[] for _ in range(n)]
    for i in sorted(range(len(weights)), key=lambda i: -weights[i]):
        lightest = loads.index(min(loads))
        shares[lightest].append(i)
        loads[lightest] += weights[i]
    return [sorted(share) for share in shares]


def _work(fn: Callable, items: list, send) -> None:
    """In the worker: the results, or the traceback of what went wrong (pickling included: it
    happens before anything is written to the pipe)."""
    try:
        send.send([fn(item) for item in items])
    except BaseException:  # noqa: BLE001 - everything goes back to the caller, who raises it
        send.send(traceback.format_exc())
    finally:
        send.close()


def _receive(receive) -> list | str:
    try:
        return receive.recv()
    except EOFError:
        return "the worker process died before it sent its results"
    finally:
        receive.close()
