"""From a history to results.json and reports: the workload's checker composed with the
statistics, both found through the registries.

Used at the end of `zkchaos test` and by `zkchaos analyze STORE_DIR`, which re-checks a stored
history, ours or one another tool wrote in the same format (docs/formats.md). Nothing is written
until the whole check has succeeded, so a bad input never costs the stored results.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

from .checkers.core import Checker, compose
from .checkers.history import PairedHistory, pair_ops, paused_gc
from .checkers.session import SessionChecker
from .checkers.stats import StatsChecker
from .history import read_history
from .store import RunDir

log = logging.getLogger(__name__)


class AnalysisError(ValueError):
    """The stored run cannot be checked; one line naming the file, line or field."""


def checker_for(options: Mapping[str, Any]) -> Checker:
    """The workload's checker, the session guarantees and the statistics, over one history."""
    import nemesis
    import workloads

    name = options.get("workload") or "register"
    try:
        workload = workloads.get(name)
    except workloads.UnknownWorkload as e:
        raise AnalysisError(f"test.json: {e}") from None
    return compose({workload.name: workload.checker(options), "sessions": SessionChecker(),
                    "stats": StatsChecker(nemesis.fault_fs(), nemesis.heal_fs())})


def analyze_run(run_dir: RunDir, records: list[dict[str, Any]], options: Mapping[str, Any], console=None,
                report: bool = True, checker: Checker | None = None,
                teardown_problems: list[str] = ()) -> dict[str, Any]:
    if not isinstance(records, PairedHistory):
        records = PairedHistory(records)  # the checkers share one pairing of the ops
    with paused_gc():  # the checkers build many small objects and no cycles (see paused_gc)
        results = (checker or checker_for(options)).check(records, options)
    if teardown_problems:
        results["teardown_problems"] = list(teardown_problems)
    run_dir.write_json(run_dir.results, results)
    if report:
        try:
            from reports.html import write_report

            write_report(run_dir, records, results, dict(options))
        except Exception as e:  # noqa: BLE001 - a report problem must not change the verdict
            log.warning("HTML report failed: %s", e)
    if console is not None:
        from reports.terminal import print_summary

        print_summary(console, results, run_dir.path)
    return results


def analyze_store(path: Path, console=None, consistency: str | None = None, report: bool = True) -> dict[str, Any]:
    """`zkchaos analyze`: re-check a stored run (test.json + history.jsonl)."""
    run_dir = RunDir(path)
    if not run_dir.history.exists():
        raise AnalysisError(f"{path}: no history.jsonl")
    try:
        options = run_dir.read_json(run_dir.test_json) if run_dir.test_json.exists() else {}
    except ValueError as e:
        raise AnalysisError(f"{run_dir.test_json}: not JSON ({e})") from None
    if not isinstance(options, dict):
        raise AnalysisError(f"{run_dir.test_json}: expected an object of options")
    if consistency is not None:
        options["consistency"] = consistency
    checker = checker_for(options)  # an unknown workload is refused before anything is read
    try:
        records = PairedHistory(read_history(run_dir.history))
        pair_ops(records)  # a completion without its invocation, two open ops of one process, ...
    except ValueError as e:
        raise AnalysisError(f"{run_dir.history}: {e}") from None
    return analyze_run(run_dir, records, options, console, report, checker)
