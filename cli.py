"""`zkchaos`: the command-line entry point."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """zkchaos: a ZooKeeper-compatible server and a Jepsen-style fault-injection harness."""


@main.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="A zoo.cfg file.")
@click.option("--port", type=click.IntRange(1, 65535), help="Client port (quick form, with --data-dir).")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Data directory (quick form).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (quick form).")
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Extra zoo.cfg settings for the quick form, e.g. --set tickTime=500.",
)
@click.option("--log-level", default="info", type=click.Choice(["debug", "info", "warning", "error"]))
def server(config_path, port, data_dir, host, overrides, log_level) -> None:
    """Run one zkserver: `--config zoo.cfg`, or the quick form `--port P --data-dir D`."""
    from zkserver import config as cfg
    from zkserver.server import run
    from zkserver.storage.txnlog import CorruptLogError

    _setup_logging(log_level)
    try:
        if config_path:
            if port or data_dir or overrides:
                raise click.UsageError("give either --config or --port/--data-dir/--set, not both")
            config = cfg.load(config_path)
        else:
            if not port or not data_dir:
                raise click.UsageError("give --config zoo.cfg, or both --port and --data-dir")
            raw = {"dataDir": data_dir, "clientPort": str(port), "clientPortAddress": host}
            for item in overrides:
                key, sep, value = item.partition("=")
                if not sep:
                    raise click.UsageError(f"--set {item!r}: expected KEY=VALUE")
                raw[key.strip()] = value.strip()
            config = cfg.from_mapping(raw, "command line", Path.cwd())
    except cfg.ConfigError as e:
        raise click.ClickException(str(e)) from None
    try:
        code = run(config)
    except CorruptLogError as e:
        raise click.ClickException(str(e)) from None
    except OSError as e:
        raise click.ClickException(f"cannot serve on {config.client_port_address}:{config.client_port}: {e.strerror}")
    sys.exit(code)


@main.command()
def demo() -> None:
    """Start a local zkserver and drive a short kazoo session against it."""
    from rich.console import Console

    from harness.demo import run_demo

    sys.exit(run_demo(Console()))


if __name__ == "__main__":
    main()
