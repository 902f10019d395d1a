"""Starting one server from the command line, with the standard library alone.

`python -m zkserver --config zoo.cfg` is what runs on nodes under test: it needs nothing but
Python (uvloop is used when installed), so a host without a package index can run the server
from the wheel. `zkchaos server` offers the same options through the harness's CLI.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from . import config as cfg

LOG_LEVELS = ("debug", "info", "warning", "error")


class StartError(Exception):
    """The server cannot start; the message is one line naming what to fix."""


class UsageError(StartError):
    """The options contradict each other or miss something."""


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def load_config(config_path: str | None, port: int | None, data_dir: str | None,
                host: str, overrides: list[str]) -> cfg.ServerConfig:
    """`--config zoo.cfg`, or the quick form `--port P --data-dir D [--set KEY=VALUE ...]`."""
    try:
        if config_path:
            if port or data_dir or overrides:
                raise UsageError("give either --config or --port/--data-dir/--set, not both")
            return cfg.load(config_path)
        if not port or not data_dir:
            raise UsageError("give --config zoo.cfg, or both --port and --data-dir")
        raw = {"dataDir": data_dir, "clientPort": str(port), "clientPortAddress": host}
        for item in overrides:
            key, sep, value = item.partition("=")
            if not sep:
                raise UsageError(f"--set {item!r}: expected KEY=VALUE")
            raw[key.strip()] = value.strip()
        return cfg.from_mapping(raw, "command line", Path.cwd())
    except cfg.ConfigError as e:
        raise StartError(str(e)) from None


def serve(config: cfg.ServerConfig) -> int:
    """Run until SIGTERM/SIGINT; the exit status the process should end with."""
    from .server import run
    from .storage.txnlog import CorruptLogError

    try:
        return run(config)
    except CorruptLogError as e:
        raise StartError(str(e)) from None
    except OSError as e:
        raise StartError(f"cannot serve on {config.client_port_address}:{config.client_port}: {e.strerror}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zkserver", description="Run one zkserver.")
    parser.add_argument("--config", help="a zoo.cfg file")
    parser.add_argument("--port", type=int, help="client port (quick form, with --data-dir)")
    parser.add_argument("--data-dir", help="data directory (quick form)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (quick form)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="extra zoo.cfg settings for the quick form")
    parser.add_argument("--log-level", default="info", choices=LOG_LEVELS)
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    try:
        return serve(load_config(args.config, args.port, args.data_dir, args.host, args.overrides))
    except UsageError as e:
        parser.error(str(e))
    except StartError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 1
