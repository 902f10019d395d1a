"""Watch tables: one-shot, persistent and persistent-recursive watches, and delete semantics."""

from __future__ import annotations

from zkserver.protocol.constants import EventType
from zkserver.watches import Mode, WatchManager

CREATED = EventType.NODE_CREATED
DELETED = EventType.NODE_DELETED
DATA = EventType.NODE_DATA_CHANGED
CHILD = EventType.NODE_CHILDREN_CHANGED


def test_standard_data_watch_fires_once():
    wm = WatchManager()
    wm.data.add("/a", "w1")
    assert wm.fire("/a", DATA) == {"w1"}
    assert wm.fire("/a", DATA) == set()
    assert wm.count() == 0


def test_standard_watch_only_fires_for_its_path():
    wm = WatchManager()
    wm.data.add("/a", "w1")
    assert wm.fire("/a/b", CREATED) == set()
    assert wm.fire("/ab", DATA) == set()
    assert wm.fire("/", DATA) == set()
    assert wm.fire("/a", CREATED) == {"w1"}


def test_child_watch_fires_only_on_children_changed_and_delete():
    wm = WatchManager()
    wm.child.add("/p", "w")
    assert wm.fire("/p", DATA) == set()
    assert wm.fire("/p", CREATED) == set()
    assert wm.fire("/p", CHILD) == {"w"}
    assert wm.fire("/p", CHILD) == set()


def test_data_watch_does_not_fire_on_children_changed():
    wm = WatchManager()
    wm.data.add("/p", "w")
    assert wm.fire("/p", CHILD) == set()
    assert wm.data.has("/p", "w")


def test_many_watchers_one_event_each():
    wm = WatchManager()
    for w in ("a", "b", "c"):
        wm.data.add("/x", w)
    wm.data.add("/x", "a")  # twice: still one watch
    assert wm.fire("/x", DATA) == {"a", "b", "c"}


def test_persistent_watch_survives_and_sees_data_and_children():
    wm = WatchManager()
    wm.add_persistent("/p", "w", recursive=False)
    assert wm.fire("/p", DATA) == {"w"}
    assert wm.fire("/p", DATA) == {"w"}
    assert wm.fire("/p", CHILD) == {"w"}
    assert wm.fire("/p", CHILD) == {"w"}
    assert wm.fire("/p", CREATED) == {"w"}
    assert wm.fire("/p/c", CREATED) == set()  # not recursive
    assert wm.fire("/p", DELETED) == {"w"}  # once, although it sits in both tables
    assert wm.fire("/p", DELETED) == {"w"}  # and it is still there afterwards


def test_persistent_recursive_fires_for_path_and_descendants():
    wm = WatchManager()
    wm.add_persistent("/r", "w", recursive=True)
    assert wm.fire("/r", DATA) == {"w"}
    assert wm.fire("/r/a", CREATED) == {"w"}
    assert wm.fire("/r/a/b/c", DATA) == {"w"}
    assert wm.fire("/r/a", DELETED) == {"w"}
    assert wm.fire("/rx", CREATED) == set()  # a sibling with the same prefix is not below /r
    assert wm.fire("/", DATA) == set()
    assert wm.data.mode("/r", "w") == Mode.PERSISTENT_RECURSIVE


def test_persistent_recursive_never_fires_children_changed():
    wm = WatchManager()
    wm.add_persistent("/r", "w", recursive=True)
    assert wm.fire("/r", CHILD) == set()
    assert wm.fire("/r/a", CHILD) == set()
    # ZooKeeper 3.8 files it in the child table too (checkWatches(Children) finds it).
    assert wm.child.has("/r", "w")


def test_recursive_watch_on_root_sees_everything():
    wm = WatchManager()
    wm.add_persistent("/", "w", recursive=True)
    assert wm.fire("/a", CREATED) == {"w"}
    assert wm.fire("/a/b/c", DELETED) == {"w"}


def test_ancestor_standard_watch_is_not_triggered_by_descendant():
    wm = WatchManager()
    wm.add_persistent("/other", "r", recursive=True)  # makes the table walk ancestors
    wm.data.add("/a", "std")
    assert wm.fire("/a/b", CREATED) == set()
    assert wm.data.has("/a", "std")


def test_standard_watch_replaces_persistent_mode_as_in_3_8():
    # ZooKeeper 3.8.0 keeps one mode per (path, watcher) and table: getData(watch=True) on a
    # path with a persistent watch turns its data side into a one-shot watch (ZOOKEEPER-4466
    # changed this after 3.8.0). The child side stays persistent.
    wm = WatchManager()
    wm.add_persistent("/p", "w", recursive=False)
    wm.data.add("/p", "w")
    assert wm.fire("/p", DATA) == {"w"}
    assert wm.fire("/p", DATA) == set()
    assert wm.fire("/p", CHILD) == {"w"}
    assert wm.fire("/p", CHILD) == {"w"}


def test_delete_fires_once_per_watcher_across_both_tables():
    wm = WatchManager()
    wm.data.add("/x", "both")
    wm.child.add("/x", "both")
    wm.data.add("/x", "data_only")
    wm.child.add("/x", "child_only")
    assert wm.fire("/x", DELETED) == {"both", "data_only", "child_only"}


def test_delete_consumes_one_shot_watches_in_both_tables():
    # DataTree.deleteNode: dataWatches.triggerWatch(NodeDeleted), then childWatches.triggerWatch
    # with the first result as the suppress set. WatchManager removes the path's watchers from
    # its table *before* applying the suppress set, so the suppressed child watch is consumed
    # too; only the event is not sent twice.
    wm = WatchManager()
    wm.data.add("/x", "w")
    wm.child.add("/x", "w")
    assert wm.fire("/x", DELETED) == {"w"}
    assert not wm.child.has("/x", "w")
    assert not wm.data.has("/x", "w")
    assert wm.count() == 0
    # a node created again at /x must not wake the old, already fired watch
    assert wm.fire("/x", CHILD) == set()


def test_delete_with_persistent_and_standard_child_watch():
    wm = WatchManager()
    wm.add_persistent("/x", "p", recursive=False)
    wm.child.add("/x", "s")
    assert wm.fire("/x", DELETED) == {"p", "s"}
    assert wm.child.has("/x", "p")
    assert not wm.child.has("/x", "s")


def test_remove_watcher_drops_everything_of_that_watcher():
    wm = WatchManager()
    wm.data.add("/a", "w")
    wm.child.add("/b", "w")
    wm.add_persistent("/c", "w", recursive=False)
    wm.add_persistent("/d", "w", recursive=True)
    wm.data.add("/a", "other")
    wm.remove_watcher("w")
    assert wm.paths_of("w") == set()
    assert wm.fire("/a", DATA) == {"other"}
    assert wm.fire("/b", CHILD) == set()
    assert wm.fire("/c", DATA) == set()
    assert wm.fire("/d/e", CREATED) == set()
    assert wm.data.recursive_count == 0
    assert wm.count() == 0


def test_table_remove_single_watch():
    wm = WatchManager()
    wm.data.add("/a", "w")
    assert wm.data.remove("/a", "w") is True
    assert wm.data.remove("/a", "w") is False
    assert wm.fire("/a", DATA) == set()


def test_recursive_count_tracks_add_and_remove():
    wm = WatchManager()
    wm.add_persistent("/r", "w", recursive=True)
    wm.add_persistent("/r", "w", recursive=True)
    assert wm.data.recursive_count == 1
    wm.data.remove("/r", "w")
    assert wm.data.recursive_count == 0


def test_count_and_watchers_of():
    wm = WatchManager()
    wm.data.add("/a", "w1")
    wm.child.add("/a", "w2")
    wm.add_persistent("/b", "w1", recursive=False)  # one entry in each table
    assert wm.count() == 4
    assert wm.watchers_of() == {"/a": {"w1", "w2"}, "/b": {"w1"}}
    assert wm.paths_of("w1") == {"/a", "/b"}
