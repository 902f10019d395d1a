"""Four-letter words: output shapes tools parse, and the whitelist."""

from __future__ import annotations

import re

import pytest

from harness.localproc import four_letter

pytestmark = pytest.mark.integration


def flw(server, word: str) -> str:
    return four_letter(server.host, server.client_port, word)


def test_ruok_and_isro(zkserver):
    assert flw(zkserver, "ruok") == "imok"
    assert flw(zkserver, "isro") == "rw"


def test_srvr_fields(zkserver, zk, base):
    out = flw(zkserver, "srvr")
    assert out.startswith("Zookeeper version: 3.8.0")
    fields = dict(line.split(": ", 1) for line in out.strip().splitlines())
    assert fields["Mode"] == "standalone"
    assert re.fullmatch(r"0x[0-9a-f]+", fields["Zxid"])
    assert int(fields["Zxid"], 16) >= zk.exists(base).czxid
    assert int(fields["Node count"]) >= 6
    assert re.fullmatch(r"\d+/[\d.]+/\d+", fields["Latency min/avg/max"])


def test_stat_lists_clients(zkserver, zk):
    out = flw(zkserver, "stat")
    assert "Clients:" in out and "/127.0.0.1:" in out and "Mode: standalone" in out


def test_mntr_is_tab_separated(zkserver, zk, base):
    zk.create(f"{base}/e", ephemeral=True)
    rows = dict(line.split("\t", 1) for line in flw(zkserver, "mntr").strip().splitlines())
    assert rows["zk_server_state"] == "standalone"
    assert int(rows["zk_ephemerals_count"]) >= 1
    assert int(rows["zk_num_alive_connections"]) >= 1
    for key in ("zk_version", "zk_avg_latency", "zk_znode_count", "zk_watch_count", "zk_global_sessions"):
        assert key in rows


def test_envi_gives_kazoo_a_version(zkserver, zk):
    assert "zookeeper.version=3.8.0" in flw(zkserver, "envi")
    assert zk.server_version()[:2] == (3, 8)


def test_conf(zkserver):
    conf = dict(line.split("=", 1) for line in flw(zkserver, "conf").strip().splitlines())
    assert conf["clientPort"] == str(zkserver.client_port)
    assert conf["tickTime"] == "200" and conf["maxSessionTimeout"] == "10000"


def test_watch_words(zkserver, zk, base):
    zk.get(base, watch=lambda e: None)
    sid = f"0x{zk.client_id[0]:x}"
    assert re.match(r"\d+ connections watching \d+ paths\nTotal watches:\d+", flw(zkserver, "wchs"))
    assert sid in flw(zkserver, "wchc") and f"\t{base}" in flw(zkserver, "wchc")
    wchp = flw(zkserver, "wchp")
    assert f"{base}\n\t{sid}" in wchp


def test_dump_and_cons(zkserver, zk, base):
    zk.create(f"{base}/d", ephemeral=True)
    dump = flw(zkserver, "dump")
    assert "Sessions with Ephemerals" in dump and f"\t{base}/d" in dump
    assert "sid=0x" in flw(zkserver, "cons")


def test_whitelist_is_honoured(server_factory):
    server = server_factory(**{"4lw.commands.whitelist": "srvr, ruok"})
    assert flw(server, "ruok") == "imok"
    assert flw(server, "mntr") == "mntr is not executed because it is not in the whitelist.\n"
    assert "Mode: standalone" in flw(server, "srvr")
