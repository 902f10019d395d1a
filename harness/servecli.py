"""`zkchaos serve`: browse the store in a browser."""

from __future__ import annotations

from pathlib import Path

import click

from .exits import HarnessCommand


@click.command("serve", cls=HarnessCommand)
@click.argument("store", default="store", type=click.Path(file_okay=False, path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (only this machine by default).")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="0: any free port.")
def serve_command(store: Path, host: str, port: int) -> None:
    """Serve an index of every run in STORE (newest first), each run's report, logs and files."""
    from reports.serve import serve_command_impl

    serve_command_impl(store, host, port)
