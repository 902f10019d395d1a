"""`zkchaos test` and `zkchaos analyze`: the harness's command-line face."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .runner import EXIT_HARNESS, TestOptions, TestRun, exit_code

NEMESES = ("partition", "kill", "pause", "none")


class HarnessCommand(click.Command):
    """Exit codes of the harness: 0 valid, 1 invalid, 2 unknown, so a mistake on the command
    line or any other failure to run is 3 (click would say 1 or 2)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.ClickException as e:
            e.exit_code = EXIT_HARNESS
            raise

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except click.ClickException as e:
            e.exit_code = EXIT_HARNESS
            raise


def _nemesis_list(ctx, param, value: str) -> list[str]:
    names = [n.strip() for n in value.split(",") if n.strip()]
    bad = [n for n in names if n not in NEMESES]
    if bad:
        raise click.BadParameter(f"unknown {', '.join(bad)}; choose from {', '.join(NEMESES)}")
    return [n for n in names if n != "none"]


@click.command("test", cls=HarnessCommand)
@click.option("--workload", default="register", show_default=True, type=click.Choice(["register"]))
@click.option("--nemesis", default="partition,kill,pause", show_default=True, callback=_nemesis_list,
              help="Comma-separated fault families: partition, kill, pause, or none.")
@click.option("--db", default="zkchaos", show_default=True, type=click.Choice(["zkchaos", "zookeeper"]))
@click.option("--consistency", default="zookeeper", show_default=True, type=click.Choice(["zookeeper", "linearizable"]),
              help="Which model decides validity: ZooKeeper's (stale reads allowed) or linearizable.")
@click.option("--time-limit", default=60.0, show_default=True, type=click.FloatRange(1, 86400), help="Seconds of workload.")
@click.option("--concurrency", default=10, show_default=True, type=click.IntRange(1, 1000), help="Client workers.")
@click.option("--rate", default=100.0, show_default=True, type=click.FloatRange(0.1, 100000), help="Ops per second, all workers.")
@click.option("--nemesis-interval", default=10.0, show_default=True, type=click.FloatRange(0.5, 3600), help="Seconds between fault and heal.")
@click.option("--read-mode", default="plain", show_default=True, type=click.Choice(["plain", "sync"]))
@click.option("--keys", default=5, show_default=True, type=click.IntRange(1, 10000))
@click.option("--nodes", "nodes", multiple=True, help="SSH hosts, comma-separated (repeatable). Without: a local 5-node cluster.")
@click.option("--nodes-file", type=click.Path(exists=True, dir_okay=False), help="One SSH host per line.")
@click.option("--local-nodes", default=5, show_default=True, type=click.IntRange(1, 15), help="Size of the local cluster.")
@click.option("--ssh-user", default="root", show_default=True)
@click.option("--ssh-key", type=click.Path(exists=True, dir_okay=False))
@click.option("--ssh-port", default=22, show_default=True, type=click.IntRange(1, 65535))
@click.option("--ssh-password", default=None)
@click.option("--strict-host-keys", is_flag=True, help="Check SSH host keys against ~/.ssh/known_hosts (off by default for throwaway nodes).")
@click.option("--known-hosts", type=click.Path(exists=True, dir_okay=False),
              help="A known_hosts file to check host keys against (implies --strict-host-keys).")
@click.option("--op-timeout", default=5.0, show_default=True, type=click.FloatRange(0.1, 600))
@click.option("--recovery-time", default=30.0, show_default=True, type=click.FloatRange(1, 3600))
@click.option("--tick-time", default=500, show_default=True, type=click.IntRange(10, 60000), help="tickTime of the servers.")
@click.option("--zookeeper-path", default=None, type=click.Path(exists=True),
              help="Apache ZooKeeper on this machine (a dir of jars, a release dir with lib/, or the release "
                   "tarball), uploaded to the nodes instead of using Debian's package there.")
@click.option("--node-dir", default=None,
              help="Where each run's private directory is made on the nodes (default: the login user's $TMPDIR or /tmp).")
@click.option("--seed", default=None, type=int)
@click.option("--store", default="store", show_default=True, type=click.Path(file_okay=False))
@click.option("--name", default=None, help="Test name in the store (default: db-workload-nemeses).")
def test_command(**kw) -> None:
    """Run a workload against an ensemble while faults are injected, then check the history."""
    from .provision import parse_nodes

    given = list(kw.pop("nodes"))
    nodes_file = kw.pop("nodes_file")
    kw["nodes"] = parse_nodes(given, nodes_file)
    if (given or nodes_file) and not kw["nodes"]:
        raise click.BadParameter("no hosts given (--nodes / --nodes-file is empty)", param_hint="--nodes")
    opts = TestOptions(**kw)
    from rich.console import Console

    console = Console()
    try:
        code = TestRun(opts, console).run()
    except KeyboardInterrupt:
        console.print("[yellow]interrupted; faults healed and nodes torn down[/]")
        sys.exit(EXIT_HARNESS)
    sys.exit(code)


@click.command("analyze", cls=HarnessCommand)
@click.argument("store_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--consistency", default=None, type=click.Choice(["zookeeper", "linearizable"]),
              help="Override the model recorded in test.json.")
def analyze_command(store_dir: str, consistency: str | None) -> None:
    """Re-check a stored history (test.json + history.jsonl) and rewrite results.json."""
    from rich.console import Console

    from .analysis import analyze_store

    try:
        results = analyze_store(Path(store_dir), Console(), consistency)
    except (FileNotFoundError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    except Exception as e:  # noqa: BLE001 - one line, exit 3, never a traceback
        raise click.ClickException(f"cannot analyze {store_dir}: {type(e).__name__}: {e}") from None
    sys.exit(exit_code(results["valid"]))
