"""The detection matrix: one row per mutant (its campaign test, every run's outcome, the
combined status, the time to the first anomaly) and one per control, its exit code, and its
JUnit testcases. `render.py` shows it."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from harness.exits import EXIT_HARNESS, EXIT_INVALID, EXIT_UNKNOWN, EXIT_VALID

from . import verdict
from .execute import RunOutcome
from .mutant import Mutant
from .plan import test_key

# Options that tell two campaign tests of one workload apart, with their `zkchaos test` defaults.
SHOWN = {"set_mode": "children", "read_mode": "plain", "consistency": "zookeeper", "nemesis_targets": None}


def test_label(outcome: RunOutcome) -> str:
    """The campaign test without its seed (each run shows its own)."""
    p = outcome.planned.test.params
    extras = "".join(f" {k}={option_text(p[k])}" for k, default in SHOWN.items() if p.get(k, default) != default)
    return f"{p['workload']} x {'+'.join(p.get('nemesis') or ['none'])}{extras}"


def option_text(value: Any) -> str:
    """An option's value as `zkchaos test` takes it (lists comma-separated)."""
    return ",".join(value) if isinstance(value, (list, tuple)) else str(value)


def _earliest_anomaly_s(outcomes: list[RunOutcome]) -> float | None:
    times = [o.first_anomaly_s for o in outcomes if o.first_anomaly_s is not None]
    return min(times) if times else None


def mutant_row(mutant: Mutant, outcomes: list[RunOutcome], runs: int) -> dict[str, Any]:
    """`runs`: how many were asked for; a mutant with fewer (interrupted) is caught by no one."""
    status = verdict.combined([o.status for o in outcomes], verdict.CAUGHT, verdict.MISSED)
    if len(outcomes) < runs and status != verdict.MISSED:
        status = verdict.UNKNOWN
    caught = [o for o in outcomes if o.status == verdict.CAUGHT]
    return {"name": mutant.name, "layer": mutant.layer, "description": mutant.description,
            "file": mutant.patch.path, "expects": list(mutant.expects),
            "test": test_label(outcomes[0]) if outcomes else "", "status": status,
            "caught": f"{len(caught)}/{runs}", "first_anomaly_s": _earliest_anomaly_s(caught),
            "runs": [o.as_json() for o in outcomes]}


def control_row(outcomes: list[RunOutcome]) -> dict[str, Any]:
    status = verdict.combined([o.status for o in outcomes], verdict.VALID, verdict.INVALID)
    return {"test": test_label(outcomes[0]), "status": status, "runs": [o.as_json() for o in outcomes]}


def _run_key(o: RunOutcome) -> tuple[str, Any]:
    return test_key(o.planned.test.params), o.planned.test.params.get("seed")


def _against_controls(outcomes: list[RunOutcome]) -> list[RunOutcome]:
    """A mutant run counts only beside a valid control of its test and seed: when the unchanged
    server failed the same test, the mutant's failure proves nothing about the mutant."""
    controls = {_run_key(o): o.status for o in outcomes if o.planned.mutant is None}
    judged = []
    for o in outcomes:
        control = controls.get(_run_key(o), verdict.VALID)
        if o.planned.mutant is not None and control != verdict.VALID and o.status != verdict.MISSED:
            o = replace(o, status=verdict.UNKNOWN, explanation=f"its control was {control}; {o.explanation}")
        judged.append(o)
    return judged


def build(mutants: list[Mutant], outcomes: list[RunOutcome], meta: dict[str, Any]) -> dict[str, Any]:
    """The matrix from every outcome so far (an interrupted selftest still has one; `meta` then
    says "interrupted": true, and the exit code says the selftest did not finish)."""
    outcomes = _against_controls(outcomes)
    runs = meta.get("runs_per_mutant", 1)
    rows = [mutant_row(m, [o for o in outcomes if o.planned.mutant is m], runs) for m in mutants]
    controls: dict[str, list[RunOutcome]] = {}
    for o in outcomes:
        if o.planned.mutant is None:
            controls.setdefault(_run_key(o)[0], []).append(o)
    matrix = {**meta, "mutants": rows, "controls": [control_row(c) for c in controls.values()]}
    matrix["exit_code"] = exit_code(matrix)
    return matrix


def exit_code(matrix: dict[str, Any]) -> int:
    """0 only when every mutant was caught and every control valid; 1 when a mutant was missed
    or a control found an anomaly; 3 when the selftest was interrupted; else 2 (something
    could not be decided)."""
    statuses = [r["status"] for r in matrix["mutants"]] + [c["status"] for c in matrix["controls"]]
    if matrix.get("interrupted"):
        return EXIT_HARNESS
    if any(s in (verdict.MISSED, verdict.INVALID) for s in statuses):
        return EXIT_INVALID
    if all(s in (verdict.CAUGHT, verdict.VALID) for s in statuses):
        return EXIT_VALID
    return EXIT_UNKNOWN


def junit_cases(matrix: dict[str, Any]) -> list[dict[str, Any]]:
    """One JUnit testcase per mutant and per control (reports.junit's run shape): a missed
    mutant or an invalid control fails, an undecided one is skipped."""
    codes = {verdict.CAUGHT: EXIT_VALID, verdict.VALID: EXIT_VALID, verdict.MISSED: EXIT_INVALID,
             verdict.INVALID: EXIT_INVALID, verdict.UNKNOWN: EXIT_UNKNOWN}
    cases = []
    for r in matrix["mutants"]:
        summary = f"{r['status']} {r['caught']} by {r['test']}; expected {', '.join(r['expects'])}"
        cases.append(_case(f"mutant {r['name']}", codes[r["status"]], r["runs"], summary))
    for c in matrix["controls"]:
        cases.append(_case(f"control {c['test']}", codes[c["status"]], c["runs"], f"{c['status']}"))
    return cases


def _case(label: str, code: int, runs: list[dict[str, Any]], summary: str) -> dict[str, Any]:
    details = "\n".join(f"seed {r['seed']}: {r['status']} (exit {r['exit_code']}) {', '.join(r['kinds'])} "
                        f"{r['explanation']}".strip() for r in runs)
    return {"label": label, "workload": "selftest", "exit_code": code,
            "duration_s": sum(r["duration_s"] for r in runs), "path": " ".join(r["path"] for r in runs),
            "summary": summary, "explanation": details}
