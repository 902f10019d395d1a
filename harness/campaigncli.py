"""`zkchaos test-all`: a campaign of tests in a row, with live progress, a summary table, one
exit code, store/index.json and JUnit XML."""

from __future__ import annotations

import json
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import click

import nemesis
import workloads

from .campaign import CampaignError, Planner, PlannedTest, campaign_exit, from_file, from_matrix, label_of
from .exits import EXIT_HARNESS, HarnessCommand
from .runner import TestRun
from .testcli import options_from, test_command

VERDICT = {0: ("VALID", "green"), 1: ("INVALID", "red"), 2: ("UNKNOWN", "yellow"), 3: ("HARNESS FAILED", "magenta")}


def parse_setting(text: str) -> tuple[str, Any]:
    """KEY=VALUE; the value read as TOML when it can be (numbers, lists, booleans), else text."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise click.BadParameter(f"{text!r}: expected KEY=VALUE", param_hint="--set")
    try:
        return key.strip().replace("-", "_"), tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return key.strip().replace("-", "_"), value


@click.command("test-all", cls=HarnessCommand)
@click.option("--campaign", type=click.Path(dir_okay=False, path_type=Path),
              help="A campaign file (TOML): [defaults], [[tests]], [[matrix]]; see campaigns/.")
@click.option("--workloads", "workload_list", default=None,
              help=f"Without --campaign: comma-separated workloads (default all: {', '.join(workloads.names())}).")
@click.option("--nemeses", default=None,
              help="Without --campaign: nemesis mixes separated by ';', families within a mix by ',' "
                   "(default: each family alone).")
@click.option("--dbs", default="zkchaos", show_default=True, help="Without --campaign: comma-separated DBs.")
@click.option("--test-count", default=1, show_default=True, type=click.IntRange(1, 1000),
              help="Runs of each combination (seeds seed, seed+1, ... when --set seed=N).")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="A `zkchaos test` option for every test, e.g. --set time_limit=30 --set nodes=h1,h2,h3.")
@click.option("--junit", type=click.Path(dir_okay=False, path_type=Path), help="Write JUnit XML here.")
@click.option("--store", default="store", show_default=True, type=click.Path(file_okay=False, path_type=Path))
def test_all_command(campaign: Path | None, workload_list: str | None, nemeses: str | None, dbs: str,
                     test_count: int, settings: tuple[str, ...], junit: Path | None, store: Path) -> None:
    """Run a campaign of tests: workloads x nemesis mixes x DBs, or a campaign file."""
    from reports.terminal import make_console

    overrides = dict(parse_setting(s) for s in settings)
    planner = Planner(test_command)
    try:
        if campaign is not None:
            tests = from_file(campaign, planner, overrides)
        else:
            mixes = [m.strip() for m in (nemeses or ";".join(nemesis.names())).split(";") if m.strip()]
            chosen = [w.strip() for w in (workload_list or ",".join(workloads.names())).split(",") if w.strip()]
            tests = from_matrix(planner, chosen, mixes, [d.strip() for d in dbs.split(",") if d.strip()],
                                test_count, overrides)
        prepared = [_prepare(t, store) for t in tests]  # every test checked before the first starts
    except (CampaignError, click.BadParameter, nemesis.NemesisError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    console = make_console()
    outcomes = _run_all(console, prepared, store)
    _summary(console, outcomes)
    if junit is not None:
        from reports.junit import write_junit

        write_junit(junit, outcomes)
        console.print(f"JUnit XML: {junit}")
    sys.exit(campaign_exit(o["exit_code"] for o in outcomes))


def _prepare(test: PlannedTest, store: Path) -> tuple[PlannedTest, TestRun]:
    """The test's run, built (and so checked) now; its label names the seed it will use."""
    try:
        run = TestRun(options_from({**test.params, "store": str(store)}))
    except (nemesis.NemesisError, ValueError) as e:
        raise CampaignError(f"{test.label}: {e}") from None
    return PlannedTest(label_of({**test.params, "seed": run.opts.seed}), test.params), run


def _run_all(console, prepared: list[tuple[PlannedTest, TestRun]], store: Path) -> list[dict[str, Any]]:
    outcomes: list[dict[str, Any]] = []
    for i, (test, run) in enumerate(prepared, 1):
        console.rule(f"[bold]test {i}/{len(prepared)}: {test.label}")
        run.console = console
        started = time.monotonic()
        try:
            code = run.run()
        except KeyboardInterrupt:
            console.print("[yellow]campaign interrupted; the remaining tests do not run[/]")
            outcomes.append(_outcome(test, run, EXIT_HARNESS, time.monotonic() - started, store))
            break
        outcomes.append(_outcome(test, run, code, time.monotonic() - started, store))
        tally = {name: sum(o["exit_code"] == c for o in outcomes) for c, (name, _) in VERDICT.items()}
        left = len(prepared) - i
        console.print(f"[bold]campaign:[/] {i} done, {left} to go; "
                      + ", ".join(f"{n} {name.lower()}" for name, n in tally.items() if n))
    return outcomes


def _outcome(test: PlannedTest, run: TestRun, code: int, took: float, store: Path) -> dict[str, Any]:
    path = run.run_dir.path if run.run_dir is not None else None
    summary, explanation, anomalies = "", "", 0
    if path is not None and (path / "results.json").exists():
        try:
            results = json.loads((path / "results.json").read_text())
            explanation = str(results.get("explanation", ""))
            anomalies = int(results.get("anomaly_count", 0) or 0)
            summary = explanation.splitlines()[0][:300] if explanation else ""
        except (OSError, ValueError):
            summary = "results.json unreadable"
    elif code == EXIT_HARNESS:
        summary = "the harness failed before checking (see harness.log)"
    return {"label": test.label, "workload": test.params.get("workload"), "exit_code": code,
            "duration_s": took, "path": str(path) if path else "", "summary": summary,
            "explanation": explanation, "anomalies": anomalies}


def _summary(console, outcomes: list[dict[str, Any]]) -> None:
    from rich.table import Table

    table = Table("#", "test", "verdict", "anomalies", "time", "run", title="campaign")
    for i, o in enumerate(outcomes, 1):
        name, colour = VERDICT.get(o["exit_code"], ("?", "white"))
        table.add_row(str(i), o["label"], f"[{colour}]{name}[/]", str(o["anomalies"]),
                      f"{o['duration_s']:.0f}s", o["path"])
    console.print(table)
