"""Nodes for a run: SSH hosts the user named, or a local namespace cluster made (and later
removed) for this run. Either way every node is reached over SSH through the same Remote, is
checked before anything is touched, and gets a private run directory that goes at the end."""

from __future__ import annotations

import ipaddress
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterable

from .db import Node
from .preflight import Needs, check_hosts
from .remote import NodeSpec, SSHRemote, connect_all
from .workspace import Workspace, WorkspaceError, cluster_id

log = logging.getLogger(__name__)


def parse_nodes(spec: list[str], nodes_file: str | None = None) -> list[str]:
    """--nodes h1,h2 (repeatable) and/or --nodes-file (one host per line, # comments)."""
    hosts: list[str] = []
    for item in spec:
        hosts += [h.strip() for h in item.split(",") if h.strip()]
    if nodes_file:
        for line in Path(nodes_file).read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                hosts.append(line)
    seen = set()
    unique = [h for h in hosts if not (h in seen or seen.add(h))]
    return unique


def provision(opts, say: Callable[[str], None], run) -> list[Node]:
    """The nodes, every one already answering SSH. A local cluster this run creates is put on
    `run.cluster` before it is built, so a failure or Ctrl-C half-way still removes it; a
    cluster that already existed (the user's `zkchaos cluster up`) is used and left alone."""
    if opts.nodes:
        specs = [
            NodeSpec(name=host, host=host, port=opts.ssh_port, user=opts.ssh_user, key_path=opts.ssh_key,
                     password=opts.ssh_password, strict_host_keys=opts.strict_host_keys or bool(opts.known_hosts),
                     known_hosts=opts.known_hosts)
            for host in opts.nodes
        ]
        local = False
    else:
        from .cluster.local import LocalCluster

        cluster = LocalCluster(prefix=opts.local_prefix, subnet=opts.local_subnet)
        run.hold_local_lock(cluster.prefix)
        if cluster.bridge_exists():
            say(f"using the existing local cluster ({cluster.bridge}); it stays up afterwards")
            specs = cluster.up(opts.local_nodes)
        else:
            run.cluster = cluster
            say(f"creating a local cluster of {opts.local_nodes} nodes (network namespaces)")
            specs = cluster.up(opts.local_nodes)
        local = True
    remotes = connect_all(specs)  # one-line error naming the host if any is unreachable
    run.remotes = remotes
    return [Node(name=spec.name, address=_address(spec, remotes[spec.name]), remote=remotes[spec.name],
                 local=local, id=i) for i, spec in enumerate(specs, 1)]


def _address(spec: NodeSpec, remote: SSHRemote) -> str:
    """The address peers and clients use: the one our SSH connection reached. Resolving the
    name on the node itself can give 127.0.1.1 (Debian's /etc/hosts), which would point the
    ensemble, and our clients, at loopback."""
    address = remote.peer_address()
    if ipaddress.ip_address(address).is_loopback and not _is_loopback(spec.host):
        raise RuntimeError(f"{spec.name}: reached over loopback ({address}); give each node an address its peers can use")
    return address


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _each(nodes: Iterable[Node], action: Callable[[Node], Any]) -> list[Any]:
    nodes = list(nodes)
    if not nodes:
        return []
    with ThreadPoolExecutor(len(nodes)) as pool:
        return list(pool.map(action, nodes))


def prepare_hosts(nodes: list[Node], workspace: Workspace, needs_of: Callable[[Node], Needs]) -> None:
    """Preflight every host, sweep what earlier crashed runs left, check the server ports are
    free, then give each node its private run directory. Raises with one line per bad host."""
    check_hosts(nodes, needs_of, workspace.base)
    workspace.cluster = cluster_id([n.address for n in nodes])
    _each(nodes, workspace.sweep)
    busy = {n.name: workspace.ports_in_use(n) for n in nodes}
    lines = [f"{n.name}: port(s) {', '.join(map(str, busy[n.name]))} on {n.address} already in use "
             "(another ZooKeeper or zkchaos server?): stop it first" for n in nodes if busy[n.name]]
    if lines:
        raise WorkspaceError("\n".join(lines))
    _each(nodes, workspace.create)


def collect_and_teardown(run, run_dir) -> list[str]:
    """Copy each node's server log and config into the store, stop the DB, remove the run
    directories, close the SSH links and remove a local cluster we made. Every step is attempted;
    returns a line for each node where something could not be done (a host that died)."""
    nodes: list[Node] = run.nodes
    problems: list[str] = []

    def one(node: Node) -> None:
        if not node.dir:
            return
        target = run_dir.node_dir(node.name)
        for remote_path in run.db.log_files(node):
            try:
                node.remote.download(remote_path, target / Path(remote_path).name)
            except Exception as e:  # noqa: BLE001 - a missing log must not stop the teardown
                log.warning("could not fetch %s from %s: %s", remote_path, node.name, e)
        for what, step in (("stop the server", run.db.teardown), ("remove the run directory", run.workspace.remove)):
            try:
                step(node)
            except Exception as e:  # noqa: BLE001
                log.warning("%s: could not %s: %s", node.name, what, e)
                problems.append(f"{node.name}: could not {what} ({str(e).splitlines()[0]})")
                return

    _each(nodes, one)
    run.db.close()
    for remote in getattr(run, "remotes", {}).values():
        try:
            remote.close()
        except Exception:  # noqa: BLE001
            pass
    if run.cluster is not None:
        try:
            run.cluster.down()
        except Exception as e:  # noqa: BLE001
            log.warning("could not remove the local cluster: %s (run `zkchaos cluster down`)", e)
    return problems
