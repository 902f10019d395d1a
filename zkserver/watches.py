"""Watch tables: which watcher (a connection) waits on which path, and in which mode.

Two tables as in ZooKeeper 3.8: data watches (exists/getData, fired by create, setData, delete)
and child watches (getChildren, fired by child changes and by delete). Persistent and
persistent-recursive watches (addWatch) sit in both tables and survive firing; recursive ones
also match every descendant and never fire NodeChildrenChanged. A table holds one mode per
(path, watcher): a later watch replaces the mode of an earlier one, as it does in 3.8.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Hashable, Iterator

from .protocol.constants import EventType


class Mode(IntEnum):
    STANDARD = 0
    PERSISTENT = 1
    PERSISTENT_RECURSIVE = 2


class WatchTable:
    def __init__(self) -> None:
        self.by_path: dict[str, dict[Hashable, Mode]] = {}
        self.by_watcher: dict[Hashable, set[str]] = {}
        self.recursive_count = 0

    def add(self, path: str, watcher: Hashable, mode: Mode = Mode.STANDARD) -> None:
        watchers = self.by_path.setdefault(path, {})
        old = watchers.get(watcher)
        if old == Mode.PERSISTENT_RECURSIVE:
            self.recursive_count -= 1
        if mode == Mode.PERSISTENT_RECURSIVE:
            self.recursive_count += 1
        watchers[watcher] = mode
        self.by_watcher.setdefault(watcher, set()).add(path)

    def remove(self, path: str, watcher: Hashable) -> bool:
        watchers = self.by_path.get(path)
        if not watchers or watcher not in watchers:
            return False
        if watchers.pop(watcher) == Mode.PERSISTENT_RECURSIVE:
            self.recursive_count -= 1
        if not watchers:
            del self.by_path[path]
        paths = self.by_watcher.get(watcher)
        if paths is not None:
            paths.discard(path)
            if not paths:
                del self.by_watcher[watcher]
        return True

    def remove_watcher(self, watcher: Hashable) -> None:
        for path in list(self.by_watcher.get(watcher, ())):
            self.remove(path, watcher)

    def mode(self, path: str, watcher: Hashable) -> Mode | None:
        return self.by_path.get(path, {}).get(watcher)

    def has(self, path: str, watcher: Hashable, persistent: bool | None = None) -> bool:
        """Whether `watcher` watches `path` (only standard ones if persistent is False)."""
        mode = self.mode(path, watcher)
        if mode is None:
            return False
        if persistent is None:
            return True
        return (mode != Mode.STANDARD) == persistent

    def _paths_to_match(self, path: str) -> Iterator[tuple[str, bool]]:
        """The path itself, then (only if recursive watches exist) its ancestors."""
        yield path, False
        if self.recursive_count:
            p = path
            while p != "/":
                p = p[: p.rfind("/")] or "/"
                yield p, True

    def trigger(self, path: str, event: EventType, suppress: set[Hashable] | None = None) -> set[Hashable]:
        """Watchers to notify of `event` on `path`; one-shot watches are consumed."""
        if not self.recursive_count and path not in self.by_path:
            return set()  # the common case: nobody watches this path or its ancestors
        fired: set[Hashable] = set()
        for candidate, is_ancestor in self._paths_to_match(path):
            watchers = self.by_path.get(candidate)
            if not watchers:
                continue
            for watcher, mode in list(watchers.items()):
                if mode == Mode.PERSISTENT_RECURSIVE:
                    if event != EventType.NODE_CHILDREN_CHANGED:
                        fired.add(watcher)
                elif not is_ancestor:
                    fired.add(watcher)
                    if mode == Mode.STANDARD:
                        self.remove(candidate, watcher)  # consumed even if its event is suppressed
        if suppress:
            fired -= suppress
        return fired

    def count(self) -> int:
        return sum(len(w) for w in self.by_path.values())


class WatchManager:
    """Both tables, and the ZooKeeper rules for which table an event fires."""

    def __init__(self) -> None:
        self.data = WatchTable()
        self.child = WatchTable()

    def fire(self, path: str, event: EventType) -> set[Hashable]:
        if event == EventType.NODE_CHILDREN_CHANGED:
            return self.child.trigger(path, event)
        fired = self.data.trigger(path, event)
        if event == EventType.NODE_DELETED:
            fired |= self.child.trigger(path, event, suppress=fired)
        return fired

    def add_persistent(self, path: str, watcher: Hashable, recursive: bool) -> None:
        mode = Mode.PERSISTENT_RECURSIVE if recursive else Mode.PERSISTENT
        self.data.add(path, watcher, mode)
        self.child.add(path, watcher, mode)

    def remove_watcher(self, watcher: Hashable) -> None:
        self.data.remove_watcher(watcher)
        self.child.remove_watcher(watcher)

    def count(self) -> int:
        return self.data.count() + self.child.count()

    def paths_of(self, watcher: Hashable) -> set[str]:
        return self.data.by_watcher.get(watcher, set()) | self.child.by_watcher.get(watcher, set())

    def watchers_of(self) -> dict[str, set[Hashable]]:
        out: dict[str, set[Hashable]] = {}
        for table in (self.data, self.child):
            for path, watchers in table.by_path.items():
                out.setdefault(path, set()).update(watchers)
        return out
