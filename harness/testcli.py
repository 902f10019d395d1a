"""`zkchaos test`: the options of a run, the workloads' own among them."""

from __future__ import annotations

import sys

import click

import nemesis
import workloads

from .exits import EXIT_HARNESS, HarnessCommand
from .runner import TestOptions, TestRun
from .workload import Option


def _nemesis_list(ctx, param, value: str) -> list[str]:
    try:
        return nemesis.check_names([n.strip() for n in value.split(",")])
    except nemesis.NemesisError as e:
        raise click.BadParameter(str(e)) from None


def _click_option(option: Option) -> click.Option:
    kind = click.Choice(option.choices) if option.choices else option.type
    return click.Option([f"--{option.name}"], default=option.default, show_default=True, type=kind,
                        help=option.help)


def specific_options() -> dict[str, Option]:
    """The workloads' and fault families' own options, by name; two may share one if they agree."""
    found: dict[str, Option] = {}
    for option in [o for w in workloads.all_workloads() for o in w.options] + nemesis.options():
        if found.setdefault(option.name, option) != option:
            raise RuntimeError(f"two extensions disagree on --{option.name}")
    return found


def _with_specific_options(command: click.Command) -> click.Command:
    command.params.extend(_click_option(o) for o in specific_options().values())
    return command


def _interval(ctx, param, value: str) -> tuple[float, float]:
    """"10" (every 10 s) or "5,15" (uniformly between 5 and 15 s)."""
    try:
        bounds = [float(x) for x in value.split(",")]
    except ValueError:
        bounds = []
    if len(bounds) == 1:
        bounds *= 2
    if len(bounds) != 2 or not 0.1 <= bounds[0] <= bounds[1] <= 3600:
        raise click.BadParameter(f"{value!r}: give SECONDS or MIN,MAX with 0.1 <= MIN <= MAX <= 3600")
    return bounds[0], bounds[1]


def _targets(ctx, param, value: str | None) -> list[str] | None:
    if value is None:
        return None
    specs = [s.strip() for s in value.split(",") if s.strip()]
    bad = [s for s in specs if s not in nemesis.targets.SPECS]
    if bad or not specs:
        raise click.BadParameter(f"unknown target {', '.join(bad) or '(none)'}; choose from {', '.join(nemesis.targets.SPECS)}")
    return specs


@_with_specific_options
@click.command("test", cls=HarnessCommand)
@click.option("--workload", default="register", show_default=True, type=click.Choice(workloads.names()),
              help="What the clients do and how it is checked: " + "; ".join(
                  f"{w.name}: {w.description}" for w in workloads.all_workloads()) + ".")
@click.option("--nemesis", default="partition,kill,pause", show_default=True, callback=_nemesis_list,
              help=f"Comma-separated fault families, run overlapping: {', '.join(nemesis.names())}; all; or none.")
@click.option("--nemesis-targets", default=None, callback=_targets,
              help=f"Which nodes faults may hit, comma-separated: {', '.join(nemesis.targets.SPECS)} "
                   "(default: what each family uses).")
@click.option("--db", default="zkchaos", show_default=True, type=click.Choice(["zkchaos", "zookeeper"]))
@click.option("--consistency", default="zookeeper", show_default=True, type=click.Choice(["zookeeper", "linearizable"]),
              help="Which model decides validity: ZooKeeper's (stale reads allowed) or linearizable.")
@click.option("--time-limit", default=60.0, show_default=True, type=click.FloatRange(1, 86400), help="Seconds of workload.")
@click.option("--concurrency", default=10, show_default=True, type=click.IntRange(1, 1000), help="Client workers.")
@click.option("--client-failover", default="yes", show_default=True, type=click.Choice(["yes", "no"]),
              help="yes: each client's session starts on its node and fails over to the others; no: pinned.")
@click.option("--rate", default=100.0, show_default=True, type=click.FloatRange(0.1, 100000), help="Ops per second, all workers.")
@click.option("--nemesis-interval", default="5,15", show_default=True, callback=_interval,
              help="Seconds between fault starts, and each fault's lifetime: SECONDS, or MIN,MAX drawn uniformly.")
@click.option("--nodes", "nodes", multiple=True, help="SSH hosts, comma-separated (repeatable). Without: a local 5-node cluster.")
@click.option("--nodes-file", type=click.Path(exists=True, dir_okay=False), help="One SSH host per line.")
@click.option("--local-nodes", default=5, show_default=True, type=click.IntRange(1, 15), help="Size of the local cluster.")
@click.option("--local-prefix", default="zkc", show_default=True,
              help="Name prefix of the local cluster's namespaces and links (one test at a time per prefix).")
@click.option("--local-subnet", default="10.66.77.0/24", show_default=True,
              help="The private /24 of the local cluster (only ever routed inside this machine).")
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
@click.option("--snap-count", default=100, show_default=True, type=click.IntRange(2, 10**9),
              help="snapCount of the servers: a snapshot (and a new log file) every ~N txns, so faults meet "
                   "snapshots and log rolls in short runs (the servers' own default is 100000).")
@click.option("--zookeeper-path", default=None, type=click.Path(exists=True),
              help="Apache ZooKeeper on this machine (a dir of jars, a release dir with lib/, or the release "
                   "tarball), uploaded to the nodes instead of using Debian's package there.")
@click.option("--node-dir", default=None,
              help="Where each run's private directory is made on the nodes (default: the login user's $TMPDIR or /tmp).")
@click.option("--seed", default=None, type=int,
              help="Replays the same sequence of faults, targets and operations (drawn and recorded when not given).")
@click.option("--store", default="store", show_default=True, type=click.Path(file_okay=False))
@click.option("--name", default=None, help="Test name in the store (default: db-workload-nemeses).")
def test_command(**kw) -> None:
    """Run a workload against an ensemble while faults are injected, then check the history."""
    opts = options_from(kw)
    from reports.terminal import make_console

    console = make_console()
    try:
        run = TestRun(opts, console)
    except (nemesis.NemesisError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    try:
        code = run.run()
    except KeyboardInterrupt:
        console.print("[yellow]interrupted; faults healed and nodes torn down[/]")
        sys.exit(EXIT_HARNESS)
    sys.exit(code)


def options_from(kw: dict) -> TestOptions:
    """The test's options from the command's parsed parameters (`zkchaos test`, or one test of a
    campaign): hosts from --nodes and --nodes-file, the extensions' own options set apart."""
    from .provision import parse_nodes

    kw = dict(kw)
    given = list(kw.pop("nodes") or ())
    nodes_file = kw.pop("nodes_file", None)
    kw["nodes"] = parse_nodes(given, nodes_file)
    if (given or nodes_file) and not kw["nodes"]:
        raise click.BadParameter("no hosts given (--nodes / --nodes-file is empty)", param_hint="--nodes")
    own = {o.key for o in specific_options().values()}
    return TestOptions(**{k: v for k, v in kw.items() if k not in own},
                       specific={k: v for k, v in kw.items() if k in own})
