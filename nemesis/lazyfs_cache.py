"""The page cache of the lazy filesystem, without any I/O of its own (sans-I/O): what has been
written but not fsynced, kept in memory, and what a power loss takes away.

Written data lives in whole pages held here until the file is synced; only then does it reach
the backing file, so dropping the cache (a power loss) leaves exactly what was synced. Size
changes made by a write are part of the unsynced data; a truncate is metadata and reaches the
backing file at once (`Backing.truncate` is called by the caller, this cache only follows it).

The caller owns the I/O: every method that needs the backing file's bytes or has to write them
gets a `Backing`, so tests drive the cache on plain objects and the FUSE daemon on real files.
Runs on the nodes with any python3 >= 3.9 and the standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Hashable, Protocol, Tuple

PAGE = 4096


class Backing(Protocol):
    """The durable bytes of one file (its backing file)."""

    def size(self) -> int: ...

    def pread(self, offset: int, length: int) -> bytes: ...

    def pwrite(self, offset: int, data: bytes) -> None: ...


@dataclass
class CachedFile:
    """A file with unsynced writes: its size as readers see it, and its dirty pages."""

    size: int
    pages: Dict[int, bytearray] = field(default_factory=dict)  # page number -> whole page


class PageCache:
    def __init__(self) -> None:
        self.files: Dict[Hashable, CachedFile] = {}

    def cached_size(self, key: Hashable) -> int | None:
        """The size readers see, when the file has unsynced writes (else the backing's)."""
        entry = self.files.get(key)
        return None if entry is None else entry.size

    def write(self, key: Hashable, backing: Backing, offset: int, data: bytes) -> int:
        """Keep `data` at `offset` in memory only; returns how many bytes were written."""
        entry = self.files.get(key)
        if entry is None:
            entry = self.files[key] = CachedFile(backing.size())
        pos, end = offset, offset + len(data)
        while pos < end:
            number, start = divmod(pos, PAGE)
            chunk = min(PAGE - start, end - pos)
            page = self._page(entry, backing, number)
            page[start:start + chunk] = data[pos - offset:pos - offset + chunk]
            pos += chunk
        entry.size = max(entry.size, end)
        return len(data)

    def read(self, key: Hashable, backing: Backing, offset: int, length: int) -> bytes:
        """What a reader sees: the cached pages over the backing file, up to the cached size."""
        entry = self.files.get(key)
        if entry is None:
            return backing.pread(offset, length)
        end = min(offset + length, entry.size)
        out = bytearray()
        pos = offset
        while pos < end:
            number, start = divmod(pos, PAGE)
            chunk = min(PAGE - start, end - pos)
            page = entry.pages.get(number)
            if page is None:
                durable = backing.pread(pos, chunk)
                out += durable + bytes(chunk - len(durable))  # beyond the backing's end: a hole
            else:
                out += page[start:start + chunk]
            pos += chunk
        return bytes(out)

    def truncate(self, key: Hashable, length: int) -> None:
        """Follow a truncate the caller has already made durable: pages past the new end go,
        and the page it falls in is zero-filled beyond it (a later extension reads zeros)."""
        entry = self.files.get(key)
        if entry is None:
            return
        number, start = divmod(length, PAGE)
        for gone in [n for n in entry.pages if n > number or (n == number and start == 0)]:
            del entry.pages[gone]
        if number in entry.pages:
            entry.pages[number][start:] = bytes(PAGE - start)
        entry.size = length

    def sync(self, key: Hashable, backing: Backing) -> int:
        """fsync: write the file's pages (up to its size) to the backing file and forget them.
        Returns how many bytes were written."""
        entry = self.files.pop(key, None)
        if entry is None:
            return 0
        written = 0
        for number in sorted(entry.pages):
            data = entry.pages[number][:max(0, entry.size - number * PAGE)]
            backing.pwrite(number * PAGE, bytes(data))
            written += len(data)
        return written

    def forget(self, key: Hashable) -> None:
        """Drop a file that no longer exists (unlinked, no handle left)."""
        self.files.pop(key, None)

    def unsynced(self) -> Tuple[int, int]:
        """(files, dirty pages) that a power loss would take now."""
        return len(self.files), sum(len(e.pages) for e in self.files.values())

    def lose(self) -> Tuple[int, int]:
        """A power loss: every unsynced write is gone. Returns what was lost (files, pages)."""
        lost = self.unsynced()
        self.files.clear()
        return lost

    @staticmethod
    def _page(entry: CachedFile, backing: Backing, number: int) -> bytearray:
        """The dirty page `number`, read from the backing file the first time it is written
        (a partial write must keep the rest of the page)."""
        page = entry.pages.get(number)
        if page is None:
            durable = backing.pread(number * PAGE, PAGE) if number * PAGE < entry.size else b""
            page = entry.pages[number] = bytearray(durable) + bytearray(PAGE - len(durable))
        return page
