"""`zkchaos demo`: start a local zkserver, drive a short kazoo session against it, show what
happened. A smoke test a new user can read; the fault-injection run arrives with the harness."""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

from kazoo.client import KazooClient
from rich.console import Console
from rich.table import Table

from .localproc import LocalServer, four_letter, free_port


def run_demo(console: Console) -> int:
    with tempfile.TemporaryDirectory(prefix="zkchaos-demo-") as tmp:
        server = LocalServer("zkchaos", Path(tmp), free_port())
        console.print(f"starting zkserver on [bold]{server.address}[/] (data in {tmp})")
        server.start()
        table = Table("step", "result", title="kazoo session against zkserver")
        try:
            zk = KazooClient(hosts=server.address, timeout=10)
            zk.start(timeout=10)
            fired = threading.Event()
            events = []
            zk.ensure_path("/demo")
            zk.get_children("/demo", watch=lambda e: (events.append(e), fired.set()))
            table.add_row("create /demo/config", zk.create("/demo/config", b"v1"))
            table.add_row("child watch fired", str(fired.wait(5) and events[0].type))
            data, stat = zk.get("/demo/config")
            table.add_row("get /demo/config", f"{data!r} version={stat.version} mzxid={stat.mzxid:#x}")
            stat = zk.set("/demo/config", b"v2", version=stat.version)
            table.add_row("set with version", f"version={stat.version}")
            member = zk.create("/demo/member-", b"", ephemeral=True, sequence=True)
            table.add_row("ephemeral sequential", member)
            tx = zk.transaction()
            tx.check("/demo/config", stat.version)
            tx.create("/demo/atomic", b"both or neither")
            table.add_row("multi (check + create)", str(tx.commit()))
            table.add_row("children", ", ".join(sorted(zk.get_children("/demo"))))
            zk.stop()
            zk.close()
            mode = [ln for ln in four_letter(server.host, server.client_port, "srvr").splitlines() if ln.startswith(("Mode", "Zxid", "Node"))]
            table.add_row("srvr", " | ".join(mode))
        finally:
            server.stop()
        console.print(table)
        console.print("[green]demo finished[/]: the server answered a real ZooKeeper client")
    return 0
