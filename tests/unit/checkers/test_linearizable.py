"""Linearizability of the register workload on hand-built histories with known verdicts."""

from __future__ import annotations

import json

import pytest

from harness.checkers.register import check_register

from .builder import History


def verdict(h: History, **kw) -> dict:
    result = check_register(h.records, "linearizable", **kw)
    json.dumps(result)  # results.json must be able to hold it
    return result


def kinds(result: dict) -> list[str]:
    return [a["type"] for a in result["anomalies"]]


# --- valid histories ---------------------------------------------------------------------------


def test_empty_history_is_valid() -> None:
    assert verdict(History())["valid"] is True


def test_sequential_reads_writes_and_cas() -> None:
    h = History().read(0, 1, None).write(0, 1, 10).read(1, 1, 10).cas(1, 1, 10, 11).read(0, 1, 11)
    result = verdict(h)
    assert result["valid"] is True, result["explanation"]
    assert result["keys"][1]["method"] == "direct"


def test_concurrent_write_and_reads_may_see_either_value() -> None:
    h = History().write(0, 1, 1)
    h.invoke(0, "write", 1, 2).invoke(1, "read", 1).invoke(2, "read", 1)
    h.ok(1, 2).ok(2, 1).ok(0)  # one reader saw the new value, the other the old: both fine
    assert verdict(h)["valid"] is True


def test_info_write_that_took_effect() -> None:
    h = History().invoke(0, "write", 1, 5).info(0).read(1, 1, 5).read(1, 1, 5)
    assert verdict(h)["valid"] is True


def test_info_write_that_did_not_take_effect() -> None:
    h = History().write(0, 1, 1).invoke(0, "write", 1, 2).info(0).read(1, 1, 1).read(2, 1, 1)
    assert verdict(h)["valid"] is True


def test_info_write_may_take_effect_long_after_its_timeout() -> None:
    h = History().write(0, 1, 1).invoke(0, "write", 1, 2).info(0).read(1, 1, 1).read(2, 1, 1).read(1, 1, 2)
    assert verdict(h)["valid"] is True


def test_invocation_without_completion_counts_as_info() -> None:
    h = History().write(0, 1, 1).invoke(0, "write", 1, 2).read(1, 1, 1).read(1, 1, 2)
    assert verdict(h)["valid"] is True


def test_failed_ops_did_not_happen() -> None:
    h = History().write(0, 1, 1).invoke(0, "write", 1, 2).fail(0).cas(1, 1, 2, 3, kind="fail").read(1, 1, 1)
    assert verdict(h)["valid"] is True


def test_nemesis_and_other_fs_are_ignored() -> None:
    h = History().nemesis("start-partition").write(0, 1, 1).nemesis("stop-partition").read(1, 1, 1)
    h.invoke(2, "sync", 1).ok(2)
    result = verdict(h)
    assert result["valid"] is True
    assert result["stats"]["skipped_ops"] == 1


def test_string_and_int_keys_are_one_key() -> None:
    h = History().write(0, 3, 1).read(1, "3", 1)
    result = verdict(h)
    assert result["valid"] is True
    assert list(result["keys"]) == [3]


def test_keys_are_independent() -> None:
    h = History().write(0, 1, 1).write(0, 2, 2).read(1, 1, 1).read(1, 2, 2)
    result = verdict(h)
    assert result["valid"] is True and set(result["keys"]) == {1, 2}


# --- invalid histories ------------------------------------------------------------------------


def test_stale_read() -> None:
    h = History().write(0, 1, 1).write(0, 1, 2).read(1, 1, 1)
    result = verdict(h)
    assert result["valid"] is False
    assert kinds(result) == ["stale-read", "lost-write"]  # and nobody ever saw 2
    failure = result["failure"]
    assert failure["key"] == 1 and failure["op"]["f"] == "read" and failure["op"]["value"]["value"] == 1
    assert failure["values"] == {"read": 1, "newer": 2}
    assert failure["prefix"]["state"] == 2 and failure["prefix"]["tail"] == [0, 2]
    assert "saw 1" in result["explanation"]
    # ...and under ZooKeeper's model this alone is allowed
    anomaly = result["anomalies"][0]
    assert anomaly["zookeeper"] == "allowed"
    assert anomaly["classification"] == "stale-read (allowed by ZooKeeper)"
    assert result["anomalies"][1]["zookeeper"] == "allowed"  # no final read proves 2 lost
    assert result["only_stale_reads_allowed_by_zookeeper"] is True


def test_lost_write_names_the_write() -> None:
    # 2 was acknowledged, then everybody, to the end, kept reading 1: the write of 2 was lost
    h = History().write(0, 1, 1).write(1, 1, 2).read(2, 1, 1).read(3, 1, 1).read(0, 1, 1)
    result = verdict(h)
    lost = [a for a in result["anomalies"] if a["type"] == "lost-write"]
    assert result["valid"] is False and len(lost) == 1
    assert lost[0]["op"]["f"] == "write" and lost[0]["values"] == {"lost": 2, "read": 1}
    # a write that was merely overwritten is not lost
    h = History().write(0, 1, 1).write(1, 1, 2).read(2, 1, 1).write(0, 1, 3).read(2, 1, 3)
    assert kinds(verdict(h)) == ["stale-read"]


def test_lost_write_is_a_stale_read_that_zookeeper_forbids_when_final() -> None:
    h = History().write(0, 1, 1).write(1, 1, 2)
    h.invoke(2, "read", 1, final=True).ok(2, 1, final=True)
    result = verdict(h)
    assert result["valid"] is False
    assert result["anomalies"][0]["zookeeper"] == "violation"
    assert result["anomalies"][0]["classification"] == "lost write"
    assert result["only_stale_reads_allowed_by_zookeeper"] is False


def test_read_of_a_value_never_written() -> None:
    h = History().write(0, 1, 1).read(1, 1, 99)
    result = verdict(h)
    assert result["valid"] is False and kinds(result) == ["read-of-unwritten-value"]
    assert result["anomalies"][0]["zookeeper"] == "violation"


def test_read_of_a_failed_write() -> None:
    h = History().invoke(0, "write", 1, 7).fail(0).read(1, 1, 7)
    assert kinds(verdict(h)) == ["read-of-failed-write"]


def test_read_from_the_future() -> None:
    h = History().read(1, 1, 4).write(0, 1, 4)
    assert kinds(verdict(h)) == ["read-from-future"]


def test_two_concurrent_cas_from_the_same_value_both_succeeding() -> None:
    h = History().write(0, 1, 1)
    h.invoke(1, "cas", 1, frm=1, to=2).invoke(2, "cas", 1, frm=1, to=3).ok(1).ok(2)
    result = verdict(h)
    assert result["valid"] is False
    assert "duplicate-cas" in kinds(result)


def test_cas_on_a_value_already_replaced() -> None:
    h = History().write(0, 1, 1).write(0, 1, 2).cas(1, 1, 1, 3)
    result = verdict(h)
    assert result["valid"] is False and kinds(result) == ["stale-cas"]


def test_zxids_give_the_server_order() -> None:
    # concurrent writes: without zxids either order is fine, so a later read of 1 is too...
    def history(z1: int | None, z2: int | None) -> History:
        h = History().invoke(0, "write", 1, 1).invoke(1, "write", 1, 2)
        h.ok(0, **({"zxid": z1} if z1 else {})).ok(1, **({"zxid": z2} if z2 else {}))
        return h.read(2, 1, 1)

    assert verdict(history(None, None))["valid"] is True
    assert verdict(history(12, 11))["valid"] is True
    # ...but the zxids say 2 came last, so reading 1 afterwards is stale
    result = verdict(history(11, 12))
    assert result["valid"] is False and kinds(result) == ["stale-read", "lost-write"]
    assert "zxid" in result["anomalies"][0]["explanation"]


def test_zxid_order_against_real_time() -> None:
    h = History().write(0, 1, 1, zxid=20).write(0, 1, 2, zxid=10)
    assert kinds(verdict(h)) == ["zxid-order"]


# --- repeated values: the search ---------------------------------------------------------------


def test_repeated_values_valid_needs_the_search() -> None:
    h = History().write(0, 1, 0).write(0, 1, 1).write(0, 1, 0).read(1, 1, 0)
    h.invoke(0, "write", 1, 1).invoke(1, "read", 1).ok(1, 0).ok(0).read(1, 1, 1)
    result = verdict(h)
    assert result["valid"] is True
    assert result["keys"][1]["method"] == "search"


def test_repeated_values_stale_read() -> None:
    h = History().write(0, 1, 0).write(0, 1, 1).write(0, 1, 0).write(0, 1, 2).read(1, 1, 1)
    result = verdict(h)
    assert result["valid"] is False and result["keys"][1]["method"] == "search"
    first = result["failure"]
    assert first["op"]["value"]["value"] == 1 and first["values"]["register_could_hold"] == [2]
    assert first["prefix"]["state"] == 2
    assert result["anomalies"][0]["zookeeper"] == "allowed"


def test_repeated_values_with_info_writes() -> None:
    h = History().write(0, 1, 0).invoke(0, "write", 1, 1).info(0).write(2, 1, 2)
    h.read(1, 1, 2).read(1, 1, 1).read(1, 1, 1)  # the timed-out write of 1 landed late
    assert verdict(h)["valid"] is True
    h.read(1, 1, 2)  # but 2 cannot come back
    assert verdict(h)["valid"] is False


def test_repeated_values_cas() -> None:
    h = History().write(0, 1, 0).cas(0, 1, 0, 1).cas(1, 1, 1, 0).cas(0, 1, 0, 1).read(1, 1, 1)
    assert verdict(h)["valid"] is True
    h.cas(1, 1, 0, 2)
    assert verdict(h)["valid"] is False


@pytest.mark.parametrize("consistency", ["linearizable", "zookeeper"])
def test_malformed_history_is_unknown(consistency: str) -> None:
    records = History().write(0, 1, 1).records
    records.append({"index": 2, "process": 5, "type": "ok", "f": "read", "value": {"key": 1, "value": 1}})
    result = check_register(records, consistency)
    assert result["valid"] == "unknown" and "completes nothing" in result["explanation"]
