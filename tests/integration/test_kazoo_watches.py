"""Watches as kazoo sees them: one-shot data/exists/child watches, event types and order."""

from __future__ import annotations

import queue
import threading

import pytest
from kazoo.protocol.states import EventType

from tests.conftest import connect

pytestmark = pytest.mark.integration


def _collector():
    q: queue.Queue = queue.Queue()
    return q, q.put


def _next(q: queue.Queue, timeout: float = 5.0):
    return q.get(timeout=timeout)


def _none_within(q: queue.Queue, seconds: float = 0.3) -> bool:
    try:
        q.get(timeout=seconds)
        return False
    except queue.Empty:
        return True


def test_data_watch_fires_once_on_change(zk, base):
    zk.create(f"{base}/w", b"0")
    q, cb = _collector()
    zk.get(f"{base}/w", watch=cb)
    zk.set(f"{base}/w", b"1")
    ev = _next(q)
    assert (ev.type, ev.path) == (EventType.CHANGED, f"{base}/w")
    zk.set(f"{base}/w", b"2")
    assert _none_within(q), "a standard watch fires once"


def test_exists_watch_on_missing_node_fires_on_create(zk, base):
    q, cb = _collector()
    assert zk.exists(f"{base}/later", watch=cb) is None
    zk.create(f"{base}/later")
    ev = _next(q)
    assert (ev.type, ev.path) == (EventType.CREATED, f"{base}/later")


def test_get_on_missing_node_sets_no_watch(zk, base):
    from kazoo.exceptions import NoNodeError

    q, cb = _collector()
    with pytest.raises(NoNodeError):
        zk.get(f"{base}/absent", watch=cb)
    zk.create(f"{base}/absent")
    assert _none_within(q)


def test_child_watch_fires_on_create_and_delete_of_children(zk, base):
    q, cb = _collector()
    zk.get_children(base, watch=cb)
    zk.create(f"{base}/kid")
    ev = _next(q)
    assert (ev.type, ev.path) == (EventType.CHILD, base)
    zk.get_children(base, watch=cb)
    zk.delete(f"{base}/kid")
    ev = _next(q)
    assert (ev.type, ev.path) == (EventType.CHILD, base)


def test_child_watch_not_fired_by_data_change(zk, base):
    zk.create(f"{base}/kid")
    q, cb = _collector()
    zk.get_children(base, watch=cb)
    zk.set(f"{base}/kid", b"x")
    zk.set(base, b"y")
    assert _none_within(q)


def test_delete_fires_deleted_on_data_and_child_watches_once(zk, base):
    zk.create(f"{base}/gone")
    q, cb = _collector()
    zk.get(f"{base}/gone", watch=cb)
    zk.get_children(f"{base}/gone", watch=cb)
    zk.delete(f"{base}/gone")
    events = [_next(q), _next(q)]
    # kazoo keeps one watcher per (path, kind), so it reports both; the server sends one frame.
    assert {(e.type, e.path) for e in events} == {(EventType.DELETED, f"{base}/gone")}


def test_watch_event_arrives_before_the_reply_that_reflects_it(zkserver, zk, base):
    """A client must see the event before any later reply showing the change (ordering)."""
    zk.create(f"{base}/o", b"0")
    other = connect(zkserver)
    try:
        seen: list[str] = []
        fired = threading.Event()

        def watcher(event):
            seen.append("event")
            fired.set()

        zk.get(f"{base}/o", watch=watcher)
        other.set(f"{base}/o", b"1")
        data, _ = zk.get(f"{base}/o")
        seen.append(f"read:{data!r}")
        assert fired.wait(5)
        assert seen[0] == "event", seen
    finally:
        other.stop()
        other.close()


def test_watches_of_other_session_fire(zkserver, zk, base):
    other = connect(zkserver)
    try:
        q, cb = _collector()
        other.exists(f"{base}/x", watch=cb)
        zk.create(f"{base}/x")
        ev = _next(q)
        assert ev.type == EventType.CREATED
    finally:
        other.stop()
        other.close()


def test_ephemeral_deletion_on_close_fires_watches(zkserver, zk, base):
    other = connect(zkserver)
    other.create(f"{base}/eph", ephemeral=True)
    q, cb = _collector()
    zk.exists(f"{base}/eph", watch=cb)
    cq, ccb = _collector()
    zk.get_children(base, watch=ccb)
    other.stop()
    other.close()
    assert _next(q).type == EventType.DELETED
    assert _next(cq).type == EventType.CHILD
    assert zk.exists(f"{base}/eph") is None


def test_datawatch_recipe(zk, base):
    zk.create(f"{base}/dw", b"a")
    values: queue.Queue = queue.Queue()

    @zk.DataWatch(f"{base}/dw")
    def watch(data, stat):
        values.put(data)

    assert values.get(timeout=5) == b"a"
    zk.set(f"{base}/dw", b"b")
    assert values.get(timeout=5) == b"b"
    zk.delete(f"{base}/dw")
    assert values.get(timeout=5) is None


def test_childrenwatch_recipe(zk, base):
    seen: queue.Queue = queue.Queue()

    @zk.ChildrenWatch(base)
    def watch(children):
        seen.put(sorted(children))

    assert seen.get(timeout=5) == []
    zk.create(f"{base}/a")
    assert seen.get(timeout=5) == ["a"]
    zk.create(f"{base}/b")
    assert seen.get(timeout=5) == ["a", "b"]
