"""Session guarantees from the zxids replies carry: hand-built histories with each violation,
and valid ones (failover included)."""

from __future__ import annotations

from harness.checkers.session import SessionChecker


class H:
    def __init__(self) -> None:
        self.records: list[dict] = []

    def _add(self, **r) -> None:
        r.update(index=len(self.records), time_ns=len(self.records) * 1000)
        r.setdefault("error", None)
        self.records.append(r)

    def op(self, p, f, zxid, session="0x1", node="n1", value=None, outcome="ok") -> "H":
        self._add(process=p, type="invoke", f=f, value=value, node=node, session=session, zxid=None)
        self._add(process=p, type=outcome, f=f, value=value, node=node, session=session, zxid=zxid)
        return self

    def invoke(self, p, f, session="0x1", node="n1", value=None) -> "H":
        self._add(process=p, type="invoke", f=f, value=value, node=node, session=session, zxid=None)
        return self

    def ok(self, p, f, zxid, session="0x1", node="n1", value=None) -> "H":
        self._add(process=p, type="ok", f=f, value=value, node=node, session=session, zxid=zxid)
        return self


def check(h: H, consistency: str = "zookeeper") -> dict:
    return SessionChecker().check(h.records, {"consistency": consistency})


def types(result: dict) -> list[str]:
    return [a["type"] for a in result["anomalies"]]


def test_monotonic_sessions_across_failover_are_valid() -> None:
    h = (H().op(0, "write", 10).op(0, "read", 12).op(0, "read", 12, node="n2")  # failed over to n2
         .op(1, "read", 5, session="0x2", node="n3")  # another session may be behind
         .op(0, "write", 14, node="n2").op(1, "read", 14, session="0x2"))
    result = check(h)
    assert result["valid"] is True and result["sessions"] == 2, result


def test_a_read_that_goes_back_after_failover() -> None:
    h = H().op(0, "read", 20, node="n1").op(0, "read", 15, node="n3")
    result = check(h)
    assert result["valid"] is False and types(result) == ["read-went-back"]
    a = result["anomalies"][0]
    assert a["servers"] == ["n1", "n3"] and a["zxids"] == [20, 15] and a["session"] == "0x1"
    assert "n1" in a["explanation"] and "n3" in a["explanation"]


def test_a_read_that_misses_the_sessions_own_write() -> None:
    h = H().op(0, "write", 30).op(0, "read", 29, node="n2")
    assert types(check(h)) == ["missed-own-write"]


def test_pipelined_writes_must_commit_in_issue_order() -> None:
    # One session, two requests in flight (two processes share it): issued a then b.
    h = (H().invoke(0, "write", value={"k": "a"}).invoke(1, "write", value={"k": "b"})
         .ok(0, "write", 41, value={"k": "a"}).ok(1, "write", 40, value={"k": "b"}))
    assert types(check(h)) == ["writes-out-of-order"]


def test_a_write_that_commits_before_what_the_session_read() -> None:
    h = H().op(0, "read", 50).op(0, "write", 50)
    assert types(check(h)) == ["write-before-read"]


def test_stale_read_after_sync_is_allowed_by_zookeeper_only() -> None:
    h = (H().op(0, "write", 60, session="0x1")
         .op(1, "read", 55, session="0x2", node="n3", value={"key": 1, "sync": True}))
    zk = check(h)
    assert zk["valid"] is True and types(zk) == ["stale-after-sync"]
    assert zk["anomalies"][0]["zookeeper"] == "allowed" and "ZooKeeper allows" in zk["explanation"]
    lin = check(h, "linearizable")
    assert lin["valid"] is False and lin["anomalies"][0]["zookeeper"] == "violation"


def test_a_separate_sync_op_covers_the_next_read() -> None:
    h = (H().op(0, "write", 70).op(1, "sync", 65, session="0x2").op(1, "read", 66, session="0x2"))
    assert types(check(h, "linearizable")) == ["stale-after-sync"]
    fine = H().op(1, "sync", 65, session="0x2").op(0, "write", 70).op(1, "read", 66, session="0x2")
    assert check(fine, "linearizable")["valid"] is True  # the write completed after the sync began


def test_failed_and_unknown_ops_constrain_nothing() -> None:
    h = H().op(0, "read", 80).op(0, "read", 10, outcome="fail").op(0, "write", 5, outcome="info")
    assert check(h)["valid"] is True


def test_without_zxids_nothing_is_checked() -> None:
    result = check(H().op(0, "read", None))
    assert result["valid"] is True and result["checked_ops"] == 0 and "no successful" in result["explanation"]
