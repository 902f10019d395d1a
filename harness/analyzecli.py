"""`zkchaos analyze`: re-check a stored run. Imports only what checking needs, so it starts
fast; the report's plotting libraries load only when a report is drawn."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .exits import HarnessCommand, exit_code


@click.command("analyze", cls=HarnessCommand)
@click.argument("store_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--consistency", default=None, type=click.Choice(["zookeeper", "linearizable"]),
              help="Override the model recorded in test.json.")
@click.option("--no-report", is_flag=True, help="Only results.json and the terminal summary (no report.html).")
def analyze_command(store_dir: str, consistency: str | None, no_report: bool) -> None:
    """Re-check a stored history (test.json + history.jsonl) and rewrite results.json."""
    from reports.terminal import make_console

    from .analysis import analyze_store

    try:
        results = analyze_store(Path(store_dir), make_console(), consistency, report=not no_report)
    except (FileNotFoundError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    except Exception as e:  # noqa: BLE001 - one line, exit 3, never a traceback
        raise click.ClickException(f"cannot analyze {store_dir}: {type(e).__name__}: {e}") from None
    sys.exit(exit_code(results["valid"]))
