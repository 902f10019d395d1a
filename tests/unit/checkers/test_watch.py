"""The watch checker on hand-built histories: valid ones for every kind of watch, one per finding
it claims, what uncertain writes and disconnections excuse, the model's coverage table, the
generator's roles and the addWatch request's bytes."""

from __future__ import annotations

import random
import struct
from typing import Any

import pytest

from harness.checkers.watch import WatchChecker, check_watch, covers
from harness.workload import Completion
from workloads.watch import KEYS, ROLES, ROOT, AddWatch, WatchGenerator, key_path

K0, K1 = key_path(0), key_path(1)
MODELS = ["zookeeper", "linearizable"]


class H:
    """Watch histories. Writes are whole ops of process 0; `watch`, `event`, `read` and `drop`
    queue journal entries of one watcher (receipt order = call order), `collect` hands them over
    in one `events` op."""

    def __init__(self) -> None:
        self.records: list[dict] = []
        self.entries: list[dict] = []
        self.conn = 0
        self.seq = 0

    def _record(self, **record: Any) -> None:
        record.update(index=len(self.records), time_ns=len(self.records) * 1_000_000, node="n1", error=None,
                      session="0x1")
        self.records.append(record)

    def _op(self, p: Any, f: str, value: dict, kind: str, result: dict, zxid: int | None) -> "H":
        self._record(process=p, type="invoke", f=f, value=value, zxid=None)
        self._record(process=p, type=kind, f=f, value={**value, **result}, zxid=zxid)
        return self

    def write(self, f: str, key: int, zxid: int, kind: str = "ok") -> "H":
        stat = {"create": {"czxid": zxid}, "set": {"mzxid": zxid, "version": 1}, "delete": {}}[f]
        value = {"key": key, "value": 1} if f == "set" else {"key": key}
        return self._op(0, f, value, kind, stat if kind == "ok" else {}, zxid if kind == "ok" else None)

    def _entry(self, **entry: Any) -> "H":
        self.seq += 1
        self.entries.append({**entry, "seq": self.seq, "conn": self.conn})
        return self

    def watch(self, mode: str, path: str, zxid: int) -> "H":
        return self._entry(kind="watch", mode=mode, path=path, zxid=zxid)

    def event(self, kind: str, path: str, after: int) -> "H":
        """`after`: the zxid of the last reply the connection had received."""
        return self._entry(kind="event", type=kind, path=path, zxid=after, server_zxid=None)

    def read(self, zxid: int, path: str = ROOT) -> "H":
        return self._entry(kind="read", path=path, zxid=zxid, exists=True, mzxid=zxid)

    def drop(self) -> "H":
        self._entry(kind="disconnected", state="suspended")
        self.conn += 1
        return self

    def collect(self, p: int = 1, watcher: str = "w1") -> "H":
        journal, self.entries = self.entries, []
        return self._op(p, "events", {"role": "data"}, "ok", {"role": "data", "watcher": watcher,
                                                              "journal": journal}, None)


def check(h: H) -> dict:
    return check_watch(h.records, key_path)


def kinds(result: dict) -> list[str]:
    return sorted(a["type"] for a in result["anomalies"])


# --- valid histories ------------------------------------------------------------------------------

@pytest.mark.parametrize("consistency", MODELS)
def test_a_recursive_watch_sees_every_change_in_order(consistency: str) -> None:
    h = H().watch("recursive", ROOT, 5).collect()
    h.write("create", 0, 6).write("set", 0, 7).write("delete", 0, 8)
    h.event("created", K0, 5).event("changed", K0, 5).event("deleted", K0, 5).read(8).collect()
    result = WatchChecker(key_path).check(h.records, {"consistency": consistency})
    assert result["valid"] is True and result["anomalies"] == [], result
    assert result["expected"] == 3 and result["events"] == 3 and result["watchers"] == 1


def test_a_one_shot_data_watch_fires_once_and_is_set_again() -> None:
    h = H().watch("data", K0, 5).write("create", 0, 6).write("set", 0, 7)
    h.event("created", K0, 5).watch("data", K0, 7).write("set", 0, 8).event("changed", K0, 7).read(8).collect()
    result = check(h)
    assert result["valid"] is True and result["expected"] == 2  # the set at 7 came while unwatched


def test_a_one_shot_child_watch_fires_on_a_child_change() -> None:
    h = H().watch("child", ROOT, 5).write("create", 0, 6).write("create", 1, 7)
    h.event("child", ROOT, 5).watch("child", ROOT, 7).write("delete", 1, 8).event("child", ROOT, 7).read(9).collect()
    assert check(h)["valid"] is True


def test_persistent_watches_on_a_node_and_its_parent() -> None:
    h = H().watch("persistent", ROOT, 5).watch("persistent", K0, 5).write("create", 0, 6).write("set", 0, 7)
    h.event("created", K0, 5).event("child", ROOT, 5).event("changed", K0, 5).read(7).collect()
    result = check(h)
    assert result["valid"] is True and result["expected"] == 3


def test_changes_while_disconnected_are_not_owed() -> None:
    h = H().watch("recursive", ROOT, 5).write("create", 0, 6).event("created", K0, 5).drop()
    h.write("set", 0, 7).write("set", 0, 8).watch("recursive", ROOT, 8).write("delete", 0, 9)
    h.event("deleted", K0, 8).read(9).collect()
    result = check(h)
    assert result["valid"] is True and result["connections"] == 2 and result["disconnections"] == 1


def test_a_change_after_the_last_reply_is_unconfirmed() -> None:
    h = H().watch("recursive", ROOT, 5).read(5).write("create", 0, 6).collect()
    result = check(h)
    assert result["valid"] is True and result["unconfirmed"] == 1 and result["expected"] == 0


def test_without_a_watch_the_verdict_is_unknown() -> None:
    assert check(H().write("create", 0, 6))["valid"] == "unknown"


# --- violations -----------------------------------------------------------------------------------

def test_a_notification_never_delivered_before_a_reply_showing_it_is_missed() -> None:
    h = H().watch("recursive", ROOT, 5).write("create", 0, 6).write("delete", 0, 7)
    result = check(h.event("created", K0, 5).read(7).collect())
    assert kinds(result) == ["missed-event"] and result["anomalies"][0]["change"]["f"] == "delete"


def test_one_lost_notification_among_others_is_missed_not_misread() -> None:
    h = H().watch("recursive", ROOT, 5).write("create", 0, 6).write("set", 0, 7).write("delete", 0, 8)
    result = check(h.event("created", K0, 5).event("deleted", K0, 5).read(8).collect())
    assert kinds(result) == ["missed-event"] and result["anomalies"][0]["change"]["f"] == "set"


def test_a_notification_after_a_reply_showing_its_change_is_late() -> None:
    h = H().watch("data", K0, 5).write("set", 0, 6).read(6).event("changed", K0, 6).collect()
    result = check(h)
    assert kinds(result) == ["late-event"] and result["valid"] is False


def test_a_notification_of_the_wrong_type() -> None:
    h = H().watch("recursive", ROOT, 5).write("set", 0, 6).event("deleted", K0, 5).read(6).collect()
    assert kinds(check(h)) == ["wrong-event"]


def test_notifications_out_of_zxid_order_are_of_the_wrong_type() -> None:
    h = H().watch("recursive", ROOT, 5).write("set", 0, 6).write("delete", 0, 7)
    assert kinds(check(h.event("deleted", K0, 5).event("changed", K0, 5).read(7).collect())) == ["wrong-event"]


@pytest.mark.parametrize("mode", ["data", "persistent"])
def test_one_change_notified_twice_is_a_duplicate(mode: str) -> None:
    h = H().watch(mode, K0, 5).write("set", 0, 6).event("changed", K0, 5).event("changed", K0, 5).read(6).collect()
    assert kinds(check(h)) == ["duplicate-event"]


def test_a_notification_no_watch_covers_is_unexpected() -> None:
    h = H().event("changed", K0, 4).watch("data", K0, 5).write("set", 1, 6).event("changed", K1, 5).read(6)
    result = check(h.collect())
    assert kinds(result) == ["unexpected-event", "unexpected-event"]


def test_a_reply_after_a_notification_older_than_its_change() -> None:
    h = H().watch("data", K0, 5).write("set", 0, 6).event("changed", K0, 5).read(5).collect()
    assert kinds(check(h)) == ["stale-after-event"]


def test_journals_of_several_events_ops_are_one_connection() -> None:
    h = H().watch("recursive", ROOT, 5).collect().write("create", 0, 6).read(6).collect()
    result = check(h.event("created", K0, 6).collect())
    assert kinds(result) == ["late-event"] and result["connections"] == 1


# --- what uncertain writes excuse -----------------------------------------------------------------

def test_an_unknown_write_may_explain_an_extra_notification() -> None:
    h = H().watch("persistent", K0, 5).write("set", 0, 0, kind="info").write("set", 0, 7)
    result = check(h.event("changed", K0, 5).event("changed", K0, 5).read(7).collect())
    assert result["valid"] is True and result["changes"]["uncertain_paths"] == [K0]


def test_an_unknown_write_does_not_excuse_a_missing_notification() -> None:
    h = H().watch("persistent", K0, 5).write("set", 0, 0, kind="info").write("set", 0, 7).read(7).collect()
    assert kinds(check(h)) == ["missed-event"]


def test_a_failed_write_changed_nothing() -> None:
    h = H().watch("persistent", K0, 5).write("delete", 0, 0, kind="fail").read(7).collect()
    assert check(h)["valid"] is True


def test_a_journal_entry_without_its_position_makes_the_history_malformed() -> None:
    h = H()
    h._op(1, "events", {}, "ok", {"watcher": "w", "journal": [{"kind": "event"}]}, None)
    assert check(h)["valid"] == "unknown"


# --- the model ------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode, watched, kind, path, covered", [
    ("data", K0, "changed", K0, True), ("data", K0, "child", K0, False), ("data", ROOT, "created", K0, False),
    ("child", ROOT, "child", ROOT, True), ("child", ROOT, "deleted", ROOT, True),
    ("child", ROOT, "changed", ROOT, False),
    ("persistent", ROOT, "child", ROOT, True), ("persistent", ROOT, "created", K0, False),
    ("recursive", ROOT, "created", K0, True), ("recursive", ROOT, "child", ROOT, False),
    ("recursive", ROOT, "changed", ROOT + "x/k0", False),
])
def test_what_each_watch_covers(mode: str, watched: str, kind: str, path: str, covered: bool) -> None:
    assert covers(mode, watched, kind, path) is covered


def test_the_generator_hands_out_roles_in_turn_and_writes_by_existence() -> None:
    gen = WatchGenerator(random.Random(3))
    suggested = [gen.next(p)[1]["role"] for p in range(len(ROLES))]
    assert suggested == list(ROLES)
    for p, role in enumerate(ROLES):
        gen.update(p, "events", {}, Completion("ok", {"role": role}))
    assert gen.next(1)[0] == "events"
    assert gen.next(0)[0] == "create"  # nothing exists yet
    for key in range(KEYS):  # creates refused: every key exists
        gen.update(0, "create", {"key": key}, Completion("fail", error="node exists"))
    assert {gen.next(0)[0] for _ in range(50)} == {"set", "delete"}
    for key in range(KEYS):  # deletes refused: none exists
        gen.update(0, "delete", {"key": key}, Completion("fail", error="no node"))
    assert gen.next(0)[0] == "create"
    gen.update(5, "events", {}, Completion("ok", {"role": "writer"}))  # a client's new process
    assert gen.next(5)[0] in ("create", "set", "delete")


def test_add_watch_is_a_path_and_a_mode() -> None:
    body = bytes(AddWatch("/a", 1).serialize())
    assert body == struct.pack(">i", 2) + b"/a" + struct.pack(">i", 1) and AddWatch.type == 106
