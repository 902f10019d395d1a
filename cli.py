"""`zkchaos`: the command-line entry point."""

from __future__ import annotations

import sys
from pathlib import Path

import click


class LazyGroup(click.Group):
    """Commands whose modules load only when used, so `zkchaos analyze` does not pay for the
    SSH and plotting libraries that `zkchaos test` needs."""

    lazy = {"test": "harness.testcli:test_command", "analyze": "harness.analyzecli:analyze_command",
            "test-all": "harness.campaigncli:test_all_command", "serve": "harness.servecli:serve_command",
            "selftest": "harness.selftestcli:selftest_command"}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy:
            import importlib

            module, attr = self.lazy[name].split(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
    """Run one zkserver: `--config zoo.cfg`, or the quick form `--port P --data-dir D`.
    (`python -m zkserver` takes the same options and needs only the standard library.)"""
    from zkserver.main import StartError, UsageError, load_config, serve, setup_logging

    setup_logging(log_level)
    try:
        sys.exit(serve(load_config(config_path, port, data_dir, host, list(overrides))))
    except UsageError as e:
        raise click.UsageError(str(e)) from None
    except StartError as e:
        raise click.ClickException(str(e)) from None


DEFAULT_ENSEMBLE_DIR = Path.home() / ".zkchaos" / "ensemble"


@main.group()
def ensemble() -> None:
    """A local loopback ensemble for development: up, status, down."""


@ensemble.command("up")
@click.option("--size", default=3, show_default=True, type=click.IntRange(1, 15), help="Voting members.")
@click.option("--observers", default=0, show_default=True, type=click.IntRange(0, 15))
@click.option("--db", "kind", default="zkchaos", show_default=True, type=click.Choice(["zkchaos", "zookeeper"]))
@click.option("--dir", "base", default=str(DEFAULT_ENSEMBLE_DIR), show_default=True, type=click.Path(file_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Extra zoo.cfg settings.")
def ensemble_up(size, observers, kind, base, overrides) -> None:
    """Start the servers in the background and print the connection string."""
    from harness.ensemble import LocalEnsemble
    from harness.localproc import apache_zookeeper_available

    base_dir = Path(base)
    if (base_dir / "ensemble.json").exists():
        raise click.ClickException(f"an ensemble is already recorded in {base_dir}; run `zkchaos ensemble down` first")
    if kind == "zookeeper" and not apache_zookeeper_available():
        raise click.ClickException("Apache ZooKeeper is not installed (apt-get install zookeeper)")
    settings = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.UsageError(f"--set {item!r}: expected KEY=VALUE")
        settings[key.strip()] = value.strip()
    base_dir.mkdir(parents=True, exist_ok=True)
    ens = LocalEnsemble(kind, base_dir, size, observers, settings)
    try:
        ens.start()
    except (RuntimeError, TimeoutError) as e:
        ens.stop()
        raise click.ClickException(f"ensemble did not come up: {e}") from None
    ens.save()
    leader = ens.leader()
    click.echo(ens.connection_string())
    click.echo(f"# {kind}: {size} voters, {observers} observers, leader server {leader.server_id if leader else '?'}; state in {base_dir}", err=True)


@ensemble.command("status")
@click.option("--dir", "base", default=str(DEFAULT_ENSEMBLE_DIR), show_default=True, type=click.Path(file_okay=False))
def ensemble_status(base) -> None:
    """Each server's mode, zxid and connections."""
    from rich.console import Console
    from rich.table import Table

    from harness.ensemble import LocalEnsemble, status_rows

    base_dir = Path(base)
    if not (base_dir / "ensemble.json").exists():
        raise click.ClickException(f"no ensemble recorded in {base_dir}; start one with `zkchaos ensemble up`")
    ens, pids = LocalEnsemble.load(base_dir)
    table = Table("id", "address", "pid", "mode", "zxid", "connections", "nodes", title=f"{ens.kind} ensemble")
    rows = status_rows(ens, pids)
    for row in rows:
        table.add_row(*(str(row.get(k) if row.get(k) is not None else "-") for k in ("id", "address", "pid", "mode", "zxid", "connections", "nodes")))
    Console().print(table)
    leaders = [r["id"] for r in rows if r.get("mode") == "leader"]
    click.echo(f"leader: {leaders[0] if len(leaders) == 1 else leaders or 'none'}")


@ensemble.command("down")
@click.option("--dir", "base", default=str(DEFAULT_ENSEMBLE_DIR), show_default=True, type=click.Path(file_okay=False))
@click.option("--keep-data", is_flag=True, help="Keep the data directories.")
def ensemble_down(base, keep_data) -> None:
    """Stop the servers (by the pids recorded at start) and remove their state."""
    import shutil

    from harness.ensemble import LocalEnsemble, pid_is_ours, stop_pid

    base_dir = Path(base)
    if not (base_dir / "ensemble.json").exists():
        click.echo(f"no ensemble recorded in {base_dir}")
        return
    ens, pids = LocalEnsemble.load(base_dir)
    for s in ens.servers:
        pid = pids.get(s.server_id)
        if pid is not None and pid_is_ours(pid, s.workdir):
            stop_pid(pid)
            click.echo(f"stopped server {s.server_id} (pid {pid})")
    if keep_data:
        (base_dir / "ensemble.json").unlink()
    else:
        shutil.rmtree(base_dir)


@main.command()
def demo() -> None:
    """Start a local zkserver and drive a short kazoo session against it."""
    from rich.console import Console

    from harness.demo import run_demo

    sys.exit(run_demo(Console()))


# --- local netns cluster: `zkchaos cluster up|status|down` ------------------------------------

_CLUSTER_STATE_HELP = "Where keys, pidfiles and sshd logs live (default: /var/lib/zkchaos/cluster/zkc)."


def _local_cluster(state_dir: str | None):
    from harness.cluster import ClusterError, LocalCluster

    try:
        return LocalCluster(state_dir)
    except ClusterError as e:
        raise click.ClickException(str(e)) from None


@main.group()
def cluster() -> None:
    """Local nodes: network namespaces on a private bridge, each with its own sshd (needs root)."""


@cluster.command("up")
@click.option("--nodes", "n", default=5, show_default=True, type=click.IntRange(1, 50), help="How many nodes.")
@click.option("--state-dir", default=None,
              type=click.Path(file_okay=False), help=_CLUSTER_STATE_HELP)
def cluster_up(n: int, state_dir: str | None) -> None:
    """Create the nodes (or keep an identical healthy cluster) and print how to reach them."""
    from harness.cluster import ClusterError

    local = _local_cluster(state_dir)
    try:
        specs = local.up(n)
    except ClusterError as e:
        raise click.ClickException(str(e)) from None
    for spec in specs:
        click.echo(f"{spec.name}\t{spec.host}")
    # Host keys are new on every bring-up, so the hint keeps them out of known_hosts.
    click.echo(f"# ssh key: {local.key_path}  (ssh -i {local.key_path} -o StrictHostKeyChecking=no "
               f"-o UserKnownHostsFile=/dev/null root@{specs[0].host})", err=True)


@cluster.command("status")
@click.option("--state-dir", default=None,
              type=click.Path(file_okay=False), help=_CLUSTER_STATE_HELP)
def cluster_status(state_dir: str | None) -> None:
    """Each node's namespace, address, sshd pid and whether SSH answers."""
    from harness.cluster import ClusterError

    local = _local_cluster(state_dir)
    try:
        rows = local.status()
        bridge, blackhole = local.bridge_exists(), local.blackholed()
    except ClusterError as e:
        raise click.ClickException(str(e)) from None
    if not rows:
        click.echo(f"no local cluster (bridge {local.bridge}: {'present' if bridge else 'absent'}; "
                   f"{local.subnet} {'blackholed' if blackhole else 'not blackholed'})")
        return
    for r in rows:
        click.echo(f"{r['name']}\t{r['address']}\tnetns {r['netns']}: {'yes' if r['netns_exists'] else 'MISSING'}"
                   f"\tsshd pid {r['sshd_pid'] or '-'}\tssh {'ok' if r['ssh'] else 'DOWN'}")
    click.echo(f"# bridge {local.bridge}: {'present' if bridge else 'absent'}; ssh key: {local.key_path}", err=True)


@cluster.command("down")
@click.option("--state-dir", default=None,
              type=click.Path(file_okay=False), help=_CLUSTER_STATE_HELP)
def cluster_down(state_dir: str | None) -> None:
    """Remove the nodes, and anything a crashed run left; leave a blackhole route for the subnet."""
    from harness.cluster import ClusterError

    try:
        removed = _local_cluster(state_dir).down()
    except ClusterError as e:
        raise click.ClickException(str(e)) from None
    click.echo("\n".join(removed) if removed else "nothing to remove")



if __name__ == "__main__":
    main()
