"""Nodes for a run: SSH hosts the user named, or a local namespace cluster made (and later
removed) for this run. Either way every node is reached over SSH through the same Remote."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

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


def provision(opts, say: Callable[[str], None]) -> tuple[Any, list[Node]]:
    """(the local cluster we made or None, the nodes), every node already answering SSH."""
    from .remote import NodeSpec, connect_all

    cluster = None
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
        say(f"creating a local cluster of {opts.local_nodes} nodes (network namespaces)")
        specs = cluster.up(opts.local_nodes)
        local = True
    remotes = connect_all(specs)  # one-line error naming the host if any is unreachable
    nodes = [
        Node(name=spec.name, address=_address(spec, remotes[spec.name]), remote=remotes[spec.name], local=local, id=i)
        for i, spec in enumerate(specs, 1)
    ]
    return cluster, nodes


def _address(spec, remote) -> str:
    """The address peers and clients use: the SSH host, resolved on the node if it is a name."""
    import ipaddress

    try:
        ipaddress.ip_address(spec.host)
        return spec.host
    except ValueError:
        out = remote.run(f"getent ahostsv4 {spec.host} | head -1 | cut -d' ' -f1", timeout=20, check=False).stdout.strip()
        return out or spec.host


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
    for node in nodes:
        try:
            node.remote.close()
        except Exception:  # noqa: BLE001
            pass
    if run.cluster is not None:
        try:
            run.cluster.down()
        except Exception as e:  # noqa: BLE001
            log.warning("could not remove the local cluster: %s (run `zkchaos cluster down`)", e)
