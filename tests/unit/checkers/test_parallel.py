"""Checks shared among forked processes: results in order, balanced shares, failures raised."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time

import pytest

from harness.checkers import compose
from harness.checkers.core import FunctionChecker
from harness.checkers.history import PairedHistory
from harness.checkers import parallel
from harness.checkers.parallel import FORK_MAX_RECORDS, FORK_MIN_RECORDS, JOBS_ENV, WorkerFailed, _shares, fork_map, jobs


def test_results_come_back_in_the_items_order_from_several_processes():
    pids = fork_map(lambda i: (i * i, os.getpid()), list(range(7)), workers=3)
    assert [square for square, _ in pids] == [i * i for i in range(7)]
    assert len({pid for _, pid in pids}) == 3
    assert os.getpid() in {pid for _, pid in pids}  # the caller takes a share itself


def test_shares_balance_the_weights_and_the_caller_gets_the_heaviest_item():
    shares = _shares([10, 1, 1, 1, 9, 1], 2)
    assert shares[0][0] == 0
    assert sorted(i for share in shares for i in share) == list(range(6))
    loads = [sum([10, 1, 1, 1, 9, 1][i] for i in share) for share in shares]
    assert abs(loads[0] - loads[1]) <= 1


def test_an_exception_in_a_worker_is_raised_with_its_traceback():
    def boom(i: int) -> int:
        if i == 3:
            raise KeyError("three")
        return i

    with pytest.raises(WorkerFailed, match="^KeyError: 'three'$") as failed:
        fork_map(boom, [0, 1, 2, 3], weights=[9, 1, 1, 1], workers=2)  # 3 lands in the worker
    assert "Traceback" in failed.value.details and "in boom" in failed.value.details


def test_an_exception_here_stops_the_workers():
    def slow_or_boom(i: int) -> int:
        if i == 0:
            raise ValueError("here")
        signal.pause()  # until the worker is stopped
        return i

    started = time.monotonic()
    with pytest.raises(ValueError, match="here"):
        fork_map(slow_or_boom, [0, 1], weights=[2, 1], workers=2)
    assert time.monotonic() - started < 10
    assert not multiprocessing.active_children()


def test_a_worker_that_dies_is_reported():
    with pytest.raises(WorkerFailed, match="died"):
        fork_map(lambda i: os._exit(7) if i else i, [0, 1], weights=[2, 1], workers=2)


def test_results_that_cannot_be_pickled_are_reported():
    with pytest.raises(WorkerFailed, match="pickle"):
        fork_map(lambda i: (lambda: i), [0, 1], weights=[2, 1], workers=2)


def test_everything_runs_here_when_other_threads_run_or_one_job_is_asked_for(monkeypatch):
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert {pid for pid in fork_map(lambda i: os.getpid(), [0, 1, 2], workers=2)} == {os.getpid()}
    finally:
        stop.set()
        other.join()
    monkeypatch.setenv(JOBS_ENV, "1")
    assert jobs() == 1
    assert {pid for pid in fork_map(lambda i: os.getpid(), [0, 1, 2])} == {os.getpid()}


def test_small_and_huge_histories_are_checked_in_one_process(monkeypatch):
    monkeypatch.delenv(JOBS_ENV, raising=False)
    assert jobs(10) == 1 and jobs(FORK_MAX_RECORDS + 1) == 1
    assert jobs(FORK_MIN_RECORDS) == jobs()


def test_a_composition_checks_its_parts_in_other_processes_over_one_pairing(monkeypatch):
    monkeypatch.setattr(parallel, "FORK_MIN_RECORDS", 0)
    history = PairedHistory([
        {"index": 0, "time_ns": 0, "process": 0, "type": "invoke", "f": "read", "value": None},
        {"index": 1, "time_ns": 1, "process": 0, "type": "ok", "f": "read", "value": 3},
    ])

    def part(valid):
        return FunctionChecker(lambda h, o: {"valid": valid, "pid": os.getpid(), "paired": h._ops is not None,
                                             "ops": len(h.ops())})

    result = compose({"a": part(True), "b": part("unknown"), "c": part(True)}).check(history, {})
    assert result["valid"] == "unknown"
    assert [result[n]["ops"] for n in "abc"] == [1, 1, 1]
    assert all(result[n]["paired"] for n in "abc")  # paired before the fork, not in each process
    if jobs() > 1:
        assert result["a"]["pid"] == os.getpid() != result["b"]["pid"]
