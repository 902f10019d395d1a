"""The iteration order of a java.util.HashSet<String>, reproduced.

ZooKeeper deletes a closing session's ephemerals in the order its HashSet of paths iterates,
and that order is visible to clients as the order of the watch events. To answer exactly as
ZooKeeper does, we keep each session's ephemeral paths the way Java would: buckets chosen by
String.hashCode (spread as HashMap does), chains in insertion order, the table doubling when
it is more than three quarters full, and clone() re-hashing into a table sized for the content.
"""

from __future__ import annotations

from typing import Iterable, Iterator

LOAD_FACTOR = 0.75
DEFAULT_CAPACITY = 16


def java_string_hash(s: str) -> int:
    """String.hashCode over UTF-16 code units, as an unsigned 32-bit value."""
    h = 0
    raw = s.encode("utf-16-be", "surrogatepass")
    for i in range(0, len(raw), 2):
        h = (31 * h + ((raw[i] << 8) | raw[i + 1])) & 0xFFFFFFFF
    return h


def _spread(s: str) -> int:
    h = java_string_hash(s)
    return h ^ (h >> 16)


def _table_size_for(n: int) -> int:
    cap = 1
    while cap < n:
        cap <<= 1
    return cap


class JavaHashSet:
    __slots__ = ("cap", "threshold", "buckets", "size")

    def __init__(self, items: Iterable[str] = (), initial_threshold: int = 0) -> None:
        self.cap = 0  # no table yet, as in a fresh HashMap
        self.threshold = initial_threshold
        self.buckets: list[list[str]] = []
        self.size = 0
        for item in items:
            self.add(item)

    def _resize(self) -> None:
        if self.cap == 0:
            new_cap = self.threshold if self.threshold > 0 else DEFAULT_CAPACITY
        else:
            new_cap = self.cap * 2
        new: list[list[str]] = [[] for _ in range(new_cap)]
        for bucket in self.buckets:
            for item in bucket:  # a chain keeps its relative order when split
                new[_spread(item) & (new_cap - 1)].append(item)
        self.cap = new_cap
        self.buckets = new
        self.threshold = int(new_cap * LOAD_FACTOR)

    def add(self, item: str) -> None:
        if self.cap == 0:
            self._resize()
        bucket = self.buckets[_spread(item) & (self.cap - 1)]
        if item in bucket:
            return
        bucket.append(item)
        self.size += 1
        if self.size > self.threshold:
            self._resize()

    def discard(self, item: str) -> None:
        if self.cap == 0:
            return
        bucket = self.buckets[_spread(item) & (self.cap - 1)]
        if item in bucket:
            bucket.remove(item)
            self.size -= 1

    def __contains__(self, item: object) -> bool:
        return self.cap != 0 and isinstance(item, str) and item in self.buckets[_spread(item) & (self.cap - 1)]

    def __iter__(self) -> Iterator[str]:
        for bucket in self.buckets:
            yield from bucket

    def __len__(self) -> int:
        return self.size

    def __bool__(self) -> bool:
        return self.size > 0

    def clone(self) -> JavaHashSet:
        """HashSet.clone(): a table sized for the current content, filled in our order."""
        copy = JavaHashSet(initial_threshold=_table_size_for(int(self.size / LOAD_FACTOR + 1.0)))
        for item in self:
            copy.add(item)
        return copy
