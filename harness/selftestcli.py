"""`zkchaos selftest`: run mutants of the server under the campaign tests that must catch them,
with a control run of the unchanged server for each, and show the detection matrix."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

import nemesis

from .campaign import CampaignError, Planner, from_file
from .campaigncli import parse_setting
from .db.zkchaos import REPO
from .exits import HarnessCommand
from .selftest import catalogue, matrix, render
from .runner import TestRun
from .selftest.execute import RunOutcome, execute, prepare
from .selftest.mutant import Mutant, MutantError
from .selftest.plan import PlannedRun, plan
from .testcli import test_command

if TYPE_CHECKING:
    from rich.console import Console

SMOKE = REPO / "campaigns" / "smoke.toml"


@click.command("selftest", cls=HarnessCommand)
@click.option("--mutant", "names", multiple=True, metavar="NAME|all",
              help="A mutant of the catalogue (repeatable; default all); --list shows them.")
@click.option("--subset", type=click.Choice(sorted(catalogue.SUBSETS)),
              help="A named set of mutants instead: ci is about three minutes on two cores.")
@click.option("--campaign", type=click.Path(dir_okay=False, path_type=Path), default=SMOKE, show_default=True,
              help="The campaign whose tests must catch the mutants (each mutant names its test).")
@click.option("--time-limit", type=click.FloatRange(1, 86400),
              help="Seconds of workload per run (default: the campaign's).")
@click.option("--runs", default=1, show_default=True, type=click.IntRange(1, 100),
              help="Runs of each mutant and control, with seeds seed, seed+1, ...")
@click.option("--seed", type=int, help="The first seed (default: the campaign test's).")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="A `zkchaos test` option for every run, e.g. --set local_prefix=zkm.")
@click.option("--store", default="store", show_default=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--junit", type=click.Path(dir_okay=False, path_type=Path), help="Write JUnit XML here.")
@click.option("--list", "list_only", is_flag=True, help="Print the catalogue and exit.")
def selftest_command(names: tuple[str, ...], subset: str | None, campaign: Path, time_limit: float | None, runs: int,
                     seed: int | None, settings: tuple[str, ...], store: Path, junit: Path | None,
                     list_only: bool) -> None:
    """Prove the harness catches real bugs: every mutant must be caught (invalid, with the
    anomaly it should cause) and every control valid; exit 0 only then."""
    from reports.terminal import make_console

    console = make_console()
    if subset is not None and names:
        raise click.BadParameter("give --mutant or --subset, not both", param_hint="--subset")
    try:
        mutants = catalogue.chosen(list(names), subset)
    except KeyError as e:
        raise click.BadParameter(str(e.args[0]), param_hint="--mutant") from None
    if list_only:
        _list(console, mutants)
        return
    try:
        for mutant in mutants:
            mutant.patched()  # a catalogue that no longer matches the code stops here, not mid-way
    except MutantError as e:
        raise click.ClickException(str(e)) from None
    overrides = dict(parse_setting(s) for s in settings)
    overrides.update({k: v for k, v in (("time_limit", time_limit), ("seed", seed)) if v is not None})
    try:
        planned = plan(mutants, from_file(campaign, Planner(test_command), overrides), campaign, runs)
        prepared = [(p, prepare(p, store)) for p in planned]
    except (CampaignError, click.BadParameter, nemesis.NemesisError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    meta = {"started": _now(), "campaign": str(campaign), "subset": subset, "runs_per_mutant": runs}
    outcomes, interrupted = _run_all(console, prepared)
    result = matrix.build(mutants, outcomes, {**meta, "finished": _now(), "interrupted": interrupted})
    _write(console, result, store, junit)
    sys.exit(result["exit_code"])


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _run_all(console: Console, prepared: list[tuple[PlannedRun, TestRun]]) -> tuple[list[RunOutcome], bool]:
    """Every run in turn; on Ctrl-C the one running heals and tears down, the rest are skipped
    and the matrix is still written from what finished."""
    outcomes: list[RunOutcome] = []
    for i, (p, run) in enumerate(prepared, 1):
        what = f"mutant {p.mutant.name}" if p.mutant else "control (unchanged server)"
        console.rule(f"[bold]selftest {i}/{len(prepared)}: {what}: {p.test.label}")
        try:
            outcomes.append(execute(p, run, console))
        except KeyboardInterrupt:
            console.print("[yellow]selftest interrupted; the remaining runs do not run[/]")
            return outcomes, True
        console.print(f"[bold]selftest:[/] {what}: {outcomes[-1].status}")
    return outcomes, False


def _write(console: Console, result: dict[str, Any], store: Path, junit: Path | None) -> None:
    render.print_matrix(console, result)
    render.write_json(store / "selftest.json", result)
    render.write_html(store / "selftest.html", result)
    console.print(f"detection matrix: {store / 'selftest.json'}, {store / 'selftest.html'}")
    if junit is not None:
        from reports.junit import write_junit

        write_junit(junit, matrix.junit_cases(result), suite="zkchaos-selftest")
        console.print(f"JUnit XML: {junit}")


def _list(console: Console, mutants: list[Mutant]) -> None:
    from rich.table import Table

    table = Table("mutant", "layer", "file", "campaign test", "expected anomalies", title="mutants")
    for m in mutants:
        test = " ".join(f"{k}={matrix.option_text(v)}" for k, v in m.campaign.items())
        table.add_row(m.name, m.layer, m.patch.path, test, ", ".join(m.expects))
    console.print(table)
