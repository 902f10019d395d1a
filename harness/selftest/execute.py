"""One planned run: the mutated tree built, the campaign test run against it through the same
TestRun as `zkchaos test` and `zkchaos test-all` (so it lands in the store with its history,
results and report like any run), the tree removed, the outcome judged."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from harness.exits import EXIT_HARNESS
from harness.runner import TestRun
from harness.testcli import options_from

from . import verdict
from .mutant import MutantError
from .plan import PlannedRun

if TYPE_CHECKING:
    from rich.console import Console


@dataclass
class RunOutcome:
    planned: PlannedRun
    exit_code: int
    status: str  # caught / missed / unknown for a mutant; valid / invalid / unknown for a control
    kinds: list[str]  # anomaly types the checkers reported
    first_anomaly_s: float | None
    path: str  # the run's directory in the store
    duration_s: float
    explanation: str = ""

    def as_json(self) -> dict[str, Any]:
        return {"seed": self.planned.test.params.get("seed"), "exit_code": self.exit_code, "status": self.status,
                "kinds": self.kinds, "first_anomaly_s": self.first_anomaly_s, "path": self.path,
                "duration_s": round(self.duration_s, 1), "explanation": self.explanation}


def prepare(planned: PlannedRun, store: Path) -> TestRun:
    """The run built (and so its options checked) before any run starts."""
    return TestRun(options_from({**planned.test.params, "store": str(store), "name": planned.name}))


def execute(planned: PlannedRun, run: TestRun, console: Console) -> RunOutcome:
    """Run it; KeyboardInterrupt passes through once the run has healed and torn down. A mutated
    tree that cannot be built is an undecided outcome, not a crash of the selftest."""
    started = time.monotonic()
    tree = None
    try:
        tree = planned.mutant.build() if planned.mutant is not None else None
        run.console = console
        run.db.source = tree
        code = run.run()
    except (OSError, MutantError) as e:
        return RunOutcome(planned, EXIT_HARNESS, verdict.UNKNOWN, [], None, "", time.monotonic() - started,
                          f"the mutated server could not be built: {e}")
    finally:
        if tree is not None:
            shutil.rmtree(tree, ignore_errors=True)
    path = run.run_dir.path if run.run_dir is not None else None
    times = {r["index"]: r["time_ns"] for r in run.history.records} if run.history is not None else {}
    return judge(planned, code, path, times, time.monotonic() - started)


def judge(planned: PlannedRun, code: int, path: Path | None, times_ns: Mapping[int, int], took: float) -> RunOutcome:
    """The outcome of a finished run from its exit code and its results.json (`times_ns`: each
    history record's time by index, to place the first anomaly)."""
    results = _results(path)
    if planned.mutant is None:
        status, only = verdict.control_status(code), None
    else:
        status = verdict.mutant_status(code, verdict.violations(results), planned.mutant.expects)
        only = planned.mutant.expects if status == verdict.CAUGHT else None
    return RunOutcome(planned, code, status, sorted(verdict.kinds(results)), verdict.first_anomaly_s(results, times_ns, only),
                      str(path or ""), took, str(results.get("explanation", ""))[:300])


def _results(path: Path | None) -> dict[str, Any]:
    try:
        return json.loads((path / "results.json").read_text()) if path is not None else {}
    except (OSError, ValueError):
        return {}
