"""A pytest plugin that runs kazoo's own test suite against a zkchaos ensemble.

kazoo's harness starts Apache ZooKeeper with `java`; this plugin swaps its cluster for a
3-server zkchaos ensemble on loopback (the same interface: servers with address, running,
run(), stop(); a cluster with start(), terminate(), reset(), get_logs()):

    python -m pytest -p tests.compat.kazoo_cluster --pyargs kazoo.tests.test_client

Settings as kazoo's harness uses them: tickTime 2000, the super digest for "super:test",
all four-letter words.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import kazoo.testing.harness as harness

from harness.ensemble import LocalEnsemble

os.environ.setdefault("ZOOKEEPER_VERSION", "3.8.0")

SETTINGS = {
    "tickTime": "2000",
    "superDigest": "super:D/InIHSb7yEEbrWz8b9l71RjZJU=",
    "extendedTypesEnabled": "true",
    "readonlymode.enabled": "true",  # kazoo's harness passes -Dreadonlymode.enabled=true
}


class Server:
    def __init__(self, local) -> None:
        self.local = local

    @property
    def address(self) -> str:
        return self.local.address

    secure_address = address

    @property
    def running(self) -> bool:
        return self.local.running()

    @property
    def client_port(self) -> int:
        return self.local.client_port

    def run(self) -> None:
        if not self.local.running():
            self.local.start(wait=False)

    def stop(self) -> None:
        self.local.stop()

    def reset(self) -> None:
        self.local.stop()
        shutil.rmtree(self.local.data_dir, ignore_errors=True)

    def get_logs(self) -> list[str]:
        return self.local.tail_log(100).splitlines()


class Cluster:
    def __init__(self, size: int = 3) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="kazoo-zkchaos-"))
        self.ensemble = LocalEnsemble("zkchaos", self.base, size, settings=dict(SETTINGS))
        self.servers = [Server(s) for s in self.ensemble.servers]

    def __getitem__(self, k: int) -> Server:
        return self.servers[k]

    def __iter__(self):
        return iter(self.servers)

    def __len__(self) -> int:
        return len(self.servers)

    def start(self) -> None:
        """Every server serving, not only a leader: a test that stops two of three servers
        right after its set-up needs the third to hold what the set-up wrote. (kazoo's own
        harness sleeps 2 s for this and hopes.)"""
        for s in self.servers:
            s.run()
        self.ensemble.wait_for_leader(timeout=60)
        for s in self.servers:
            s.local.wait_ready(timeout=60)

    def stop(self) -> None:
        for s in self.servers:
            s.stop()

    def terminate(self) -> None:
        self.stop()

    def reset(self) -> None:
        for s in self.servers:
            s.reset()

    def get_logs(self) -> list[str]:
        return [line for s in self.servers for line in s.get_logs()]

    def get_ssl_client_configuration(self) -> dict:
        raise NotImplementedError("zkchaos serves no TLS port")


_CLUSTER: Cluster | None = None


def get_global_cluster() -> Cluster:
    global _CLUSTER
    if _CLUSTER is None:
        _CLUSTER = Cluster(int(os.environ.get("ZOOKEEPER_CLUSTER_SIZE", "3")))
    return _CLUSTER


harness.get_global_cluster = get_global_cluster


def pytest_sessionfinish(session, exitstatus) -> None:
    """Stop the ensemble; keep its server logs when something failed, for the post-mortem."""
    if _CLUSTER is None:
        return
    _CLUSTER.terminate()
    if exitstatus == 0:
        shutil.rmtree(_CLUSTER.base, ignore_errors=True)
    else:
        print(f"\nzkchaos server logs kept in {_CLUSTER.base}")
