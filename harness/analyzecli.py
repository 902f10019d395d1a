"""`zkchaos analyze`: re-check a stored run, or every run of a store. Imports only what checking
needs, so it starts fast; the report's libraries load only when a report is drawn."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .exits import EXIT_HARNESS, HarnessCommand, exit_code


@click.command("analyze", cls=HarnessCommand)
@click.argument("store_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--consistency", default=None, type=click.Choice(["zookeeper", "linearizable"]),
              help="Override the model recorded in test.json.")
@click.option("--no-report", is_flag=True, help="Only results.json and the terminal summary (no report.html).")
def analyze_command(store_dir: Path, consistency: str | None, no_report: bool) -> None:
    """Re-check a stored history (test.json + history.jsonl) and rewrite results.json. Given a
    whole store, re-check every run in it and list them, broken ones marked."""
    from reports.terminal import make_console

    from .analysis import analyze_store

    if _has_runs(store_dir):
        sys.exit(_analyze_all(store_dir, make_console(), consistency, not no_report))
    try:
        results = analyze_store(store_dir, make_console(), consistency, report=not no_report)
    except (FileNotFoundError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    except Exception as e:  # noqa: BLE001 - one line, exit 3, never a traceback
        raise click.ClickException(f"cannot analyze {store_dir}: {type(e).__name__}: {e}") from None
    sys.exit(exit_code(results["valid"]))


def _has_runs(path: Path) -> bool:
    from .storeindex import run_dirs

    return not (path / "history.jsonl").exists() and bool(run_dirs(path))


def _analyze_all(store: Path, console, consistency: str | None, report: bool) -> int:
    """Every run: its verdict, or why it could not be checked; the store's index refreshed."""
    from rich.table import Table

    from .analysis import analyze_store
    from .campaign import campaign_exit
    from .storeindex import record, run_dirs

    table = Table("run", "verdict", "why", title=f"every run in {store}")
    codes = []
    for run in run_dirs(store):
        try:
            results = analyze_store(run, None, consistency, report=report)
            code, why = exit_code(results["valid"]), str(results.get("explanation", ""))[:200]
        except Exception as e:  # noqa: BLE001 - a broken run is listed, the others still checked
            code, why = EXIT_HARNESS, f"broken: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
        codes.append(code)
        record(store, run, exit_code=code)
        verdict = {0: "[green]VALID[/]", 1: "[red]INVALID[/]", 2: "[yellow]UNKNOWN[/]"}.get(code, "[magenta]BROKEN[/]")
        table.add_row(str(run.relative_to(store)), verdict, why)
    console.print(table)
    return campaign_exit(codes)
