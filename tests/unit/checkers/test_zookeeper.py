"""ZooKeeper's model: linearizable writes, sequentially consistent reads per session."""

from __future__ import annotations

import json

from harness.checkers.register import check_register

from .builder import History


def zk(h: History) -> dict:
    result = check_register(h.records, "zookeeper")
    json.dumps(result)
    return result


def classes(result: dict) -> list[tuple[str, str]]:
    return [(a["zookeeper"], a["classification"]) for a in result["anomalies"]]


def test_valid_history_has_no_findings() -> None:
    h = History().write(0, 1, 1).read(1, 1, 1).cas(1, 1, 1, 2).read(0, 1, 2)
    result = zk(h)
    assert result["valid"] is True and result["anomalies"] == []


def test_stale_read_is_allowed_and_classified() -> None:
    h = History().write(0, 1, 1).write(0, 1, 2).read(1, 1, 1)
    result = zk(h)
    assert result["valid"] is True
    assert classes(result) == [
        ("allowed", "stale-read (allowed by ZooKeeper)"),
        ("allowed", "unseen write (allowed by ZooKeeper: only stale reads missed it, no final read)"),
    ]
    # the same history is not linearizable
    assert check_register(h.records, "linearizable")["valid"] is False


def test_stale_reads_of_several_sessions_that_each_move_forward() -> None:
    h = History().write(0, 1, 1).write(0, 1, 2).write(0, 1, 3)
    h.read(1, 1, 1).read(1, 1, 2).read(2, 1, 2).read(2, 1, 3).read(1, 1, 3)
    result = zk(h)
    assert result["valid"] is True
    assert {c for c in classes(result)} == {("allowed", "stale-read (allowed by ZooKeeper)")}


def test_read_going_back_in_a_session_is_invalid_under_both_models() -> None:
    h = History().write(0, 1, 1).write(0, 1, 2).read(1, 1, 2).read(1, 1, 1)
    result = zk(h)
    assert result["valid"] is False
    assert ("violation", "read went back in session order") in classes(result)
    lin = check_register(h.records, "linearizable")
    assert lin["valid"] is False
    assert lin["anomalies"][0]["zookeeper"] == "violation"
    assert lin["anomalies"][0]["classification"] == "read went back in session order"


def test_going_back_after_failover_to_another_server_is_still_a_violation() -> None:
    h = History().write(0, 1, 1).write(0, 1, 2)
    h.read(1, 1, 2, node="n1")
    h.read(1, 1, 1, node="n2")  # same session, now served by a lagging follower
    assert zk(h)["valid"] is False


def test_a_new_session_may_read_older_values() -> None:
    # the same process, but a new session after expiry: no order between the two sessions
    h = History().write(0, 1, 1).write(0, 1, 2)
    h.invoke(1, "read", 1, session="s1").ok(1, 2, session="s1")
    h.invoke(1, "read", 1, session="s2").ok(1, 1, session="s2")
    result = zk(h)
    assert result["valid"] is True, result["explanation"]
    assert classes(result) == [("allowed", "stale-read (allowed by ZooKeeper)")]


def test_read_your_writes_violation() -> None:
    h = History().write(0, 1, 1).write(1, 1, 2).read(1, 1, 1)
    result = zk(h)
    assert result["valid"] is False
    assert classes(result)[0] == ("violation", "missed own write")


def test_read_of_a_value_never_written_is_a_violation() -> None:
    h = History().write(0, 1, 1).read(1, 1, 42)
    result = zk(h)
    assert result["valid"] is False
    assert classes(result) == [("violation", "read of a value never written")]


def test_read_from_the_future_is_a_violation() -> None:
    h = History().read(1, 1, 4).write(0, 1, 4)
    result = zk(h)
    assert result["valid"] is False and classes(result) == [("violation", "read from the future")]


def test_lost_write_seen_by_final_read() -> None:
    h = History().write(0, 1, 1).write(1, 1, 2)
    h.invoke(2, "read", 1, final=True).ok(2, 1, final=True)
    result = zk(h)
    assert result["valid"] is False
    assert classes(result) == [("violation", "lost write")] * 2
    # the final read that proves it, then the write that was lost
    assert result["failure"]["op"]["final"] is True
    assert result["anomalies"][1]["op"]["value"] == {"key": 1, "value": 2}


def test_lost_update_by_a_cas_on_an_overwritten_value() -> None:
    h = History().write(0, 1, 1).write(1, 1, 2).cas(2, 1, 1, 3)
    result = zk(h)
    assert result["valid"] is False
    assert classes(result)[0][0] == "violation"


def test_duplicate_cas_is_a_violation() -> None:
    h = History().write(0, 1, 1)
    h.invoke(1, "cas", 1, frm=1, to=2).invoke(2, "cas", 1, frm=1, to=3).ok(1).ok(2)
    result = zk(h)
    assert result["valid"] is False
    assert ("violation", "two cas took effect from the same value") in classes(result)


def test_unknown_outcome_write_seen_by_a_read_is_in_the_write_order() -> None:
    # the timed-out write of 2 happened (someone read it), so the final read of 1 lost it
    h = History().write(0, 1, 1).invoke(1, "write", 1, 2).info(1).read(2, 1, 2)
    h.invoke(3, "read", 1, final=True).ok(3, 1, final=True)
    assert zk(h)["valid"] is False


def test_repeated_values_stale_read_is_allowed() -> None:
    h = History().write(0, 1, 0).write(0, 1, 1).write(0, 1, 0).write(0, 1, 2).read(1, 1, 1)
    result = zk(h)
    assert result["valid"] is True
    assert classes(result) == [("allowed", "stale-read (allowed by ZooKeeper)")]


def test_repeated_values_session_going_back() -> None:
    h = History().write(0, 1, 0).write(0, 1, 1).write(0, 1, 0).write(0, 1, 2)
    h.read(1, 1, 2).read(1, 1, 1)
    result = zk(h)
    assert result["valid"] is False
    assert result["anomalies"][0]["zookeeper"] == "violation"


def test_repeated_values_missed_own_write() -> None:
    h = History().write(0, 1, 0).write(1, 1, 1).write(0, 1, 0).write(1, 1, 2).read(1, 1, 1)
    result = zk(h)
    assert result["valid"] is False
    assert classes(result)[0] == ("violation", "missed own write")
