"""kazoo's own test suite (installed with kazoo) against a 3-server zkchaos ensemble: an
independent body of client tests written for Apache ZooKeeper. Deselected: what zkchaos does
not offer (TLS ports, dynamic reconfiguration)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

MODULES = [
    "kazoo.tests.test_client",
    "kazoo.tests.test_watchers",
    "kazoo.tests.test_cache",
    "kazoo.tests.test_lock",
    "kazoo.tests.test_lease",
    "kazoo.tests.test_party",
    "kazoo.tests.test_partitioner",
    "kazoo.tests.test_barrier",
    "kazoo.tests.test_counter",
    "kazoo.tests.test_election",
    "kazoo.tests.test_queue",
    "kazoo.tests.test_connection",
]
UNSUPPORTED = ["TestSSLClient", "TestReconfig"]


def test_kazoo_suite_passes_against_a_zkchaos_ensemble(tmp_path):
    pytest.importorskip("OpenSSL", reason="kazoo's test harness imports pyOpenSSL (test extra)")
    pytest.importorskip("objgraph", reason="kazoo's cache tests import objgraph (test extra)")
    done = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-p", "tests.compat.kazoo_cluster", "--pyargs", *MODULES,
            "-q", "-p", "no:cacheprovider", "--timeout", "120", "-k", " and ".join(f"not {u}" for u in UNSUPPORTED),
            "-o", f"cache_dir={tmp_path}",
        ],
        capture_output=True, text=True, cwd=REPO, timeout=900,
    )
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-2000:]
    assert done.returncode == 0, f"kazoo's suite failed: {summary}\n{done.stdout[-6000:]}"
    assert " passed" in summary and "failed" not in summary, summary
