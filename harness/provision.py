"""Nodes for a run: SSH hosts the user named, or a local namespace cluster made (and later
removed) for this run. Either way every node is reached over SSH through the same Remote."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from .db import Node

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
    from .remote import NodeSpec, connect_all

    if opts.nodes:
        specs = [
            NodeSpec(
                name=host,
                host=host,
                port=opts.ssh_port,
                user=opts.ssh_user,
                key_path=opts.ssh_key,
                password=opts.ssh_password,
                strict_host_keys=opts.strict_host_keys,
            )
            for host in opts.nodes
        ]
        local = False
    else:
        from .cluster.local import LocalCluster

        cluster = LocalCluster()
        run.hold_local_lock()
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
    nodes = []
    for i, spec in enumerate(specs, 1):
        address = _address(spec, remotes[spec.name])
        nodes.append(Node(name=spec.name, address=address, remote=remotes[spec.name], local=local, id=i))
    return nodes


def _address(spec, remote) -> str:
    """The address peers and clients use: the one our SSH connection reached. Resolving the
    name on the node itself can give 127.0.1.1 (Debian's /etc/hosts), which would point the
    ensemble, and our clients, at loopback."""
    import ipaddress

    address = remote.peer_address() if hasattr(remote, "peer_address") else spec.host
    if ipaddress.ip_address(address).is_loopback and not _all_loopback(spec):
        raise RuntimeError(f"{spec.name}: reached over loopback ({address}); give each node an address its peers can use")
    return address


def _all_loopback(spec) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(spec.host).is_loopback
    except ValueError:
        return False


def collect_and_teardown(run, run_dir) -> None:
    """Copy each node's server log and config into the store, stop and wipe the DB, close the
    SSH links and remove a local cluster we made. Every step is attempted."""
    nodes: list[Node] = run.nodes

    def one(node: Node) -> None:
        target = run_dir.node_dir(node.name)
        for remote_path in run.db.log_files(node):
            try:
                node.remote.download(remote_path, target / Path(remote_path).name)
            except Exception as e:  # noqa: BLE001 - a missing log must not stop the teardown
                log.warning("could not fetch %s from %s: %s", remote_path, node.name, e)
        try:
            run.db.teardown(node)
        except Exception as e:  # noqa: BLE001
            log.warning("teardown of %s on %s failed: %s", run.db.name, node.name, e)

    if nodes:
        with ThreadPoolExecutor(len(nodes)) as pool:
            list(pool.map(one, nodes))
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
