"""`zkchaos server` start-up: zoo.cfg handling and one-line errors for bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from zkserver import config as cfg

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args], capture_output=True, text=True, timeout=timeout, cwd=REPO
    )


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "zoo.cfg"
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    "line, key",
    [
        ("tickTime=abc", "tickTime"),
        ("clientPort=70000", "clientPort"),
        ("maxClientCnxns=-3", "maxClientCnxns"),
        ("extendedTypesEnabled=maybe", "extendedTypesEnabled"),
        ("server.1=localhost:2888", "server.1"),
    ],
)
def test_bad_value_stops_start_up_naming_the_key(tmp_path, line, key):
    path = _write(tmp_path, f"dataDir={tmp_path}/data\nclientPort=2999\n{line}\n")
    done = run_cli("server", "--config", str(path))
    assert done.returncode != 0
    error_lines = [ln for ln in done.stderr.splitlines() if ln.startswith("Error")]
    assert len(error_lines) == 1 and key in error_lines[0], done.stderr


def test_missing_data_dir(tmp_path):
    done = run_cli("server", "--config", str(_write(tmp_path, "clientPort=2999\n")))
    assert done.returncode != 0 and "dataDir is required" in done.stderr


def test_missing_config_file(tmp_path):
    done = run_cli("server", "--config", str(tmp_path / "nope.cfg"))
    assert done.returncode != 0 and "cannot read" in done.stderr


def test_quick_form_needs_both_options():
    done = run_cli("server", "--port", "2999")
    assert done.returncode != 0 and "--data-dir" in done.stderr


def test_unknown_and_unused_keys_are_warned_about(tmp_path, caplog):
    import logging

    with caplog.at_level(logging.WARNING, logger="zkserver.config"):
        config = cfg.parse(f"dataDir={tmp_path}\nfancyKey=1\nadmin.serverPort=8080\nsnapCount=10\n")
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "unknown key fancyKey" in messages
    assert "admin.serverPort" in messages
    assert config.snap_count == 10


def test_debian_zoo_cfg_is_accepted(tmp_path):
    text = Path("/etc/zookeeper/conf_example/zoo.cfg")
    if not text.exists():
        pytest.skip("Debian's example zoo.cfg is not installed")
    config = cfg.parse(text.read_text())
    assert config.tick_time == 2000 and config.client_port == 2181


def test_session_timeout_bounds_default_from_tick_time(tmp_path):
    config = cfg.parse(f"dataDir={tmp_path}\ntickTime=1500\n")
    assert (config.min_session_timeout, config.max_session_timeout) == (3000, 30000)
    assert config.negotiate_timeout(100) == 3000 and config.negotiate_timeout(10**7) == 30000


def test_ensemble_lines_and_myid(tmp_path):
    (tmp_path / "myid").write_text("2\n")
    config = cfg.parse(
        f"dataDir={tmp_path}\n"
        "server.1=127.0.0.1:2888:3888\n"
        "server.2=127.0.0.1:2889:3889;127.0.0.1:2182\n"
        "server.3=127.0.0.1:2890:3890:observer\n"
    )
    assert config.server_id == 2 and config.client_port == 2182
    assert config.peers[3].observer and not config.peers[1].observer


def test_port_in_use_is_a_clear_error(zkserver, tmp_path):
    done = run_cli("server", "--port", str(zkserver.client_port), "--data-dir", str(tmp_path / "d"))
    assert done.returncode != 0
    assert "cannot serve on" in done.stderr
