"""The lazy filesystem's page cache without a mount: what readers see, what reaches the backing
file on fsync, what a power loss leaves; checked on examples and against a two-copy model
(what readers see, what is durable) over random operation sequences."""

from __future__ import annotations

import random

import pytest

from nemesis.lazyfs_cache import PAGE, PageCache


class MemoryBacking:
    """A backing file in memory."""

    def __init__(self, data: bytes = b"") -> None:
        self.data = bytearray(data)

    def size(self) -> int:
        return len(self.data)

    def pread(self, offset: int, length: int) -> bytes:
        return bytes(self.data[offset:offset + length])

    def pwrite(self, offset: int, data: bytes) -> None:
        if offset > len(self.data):
            self.data += bytes(offset - len(self.data))
        self.data[offset:offset + len(data)] = data

    def truncate(self, size: int) -> None:
        del self.data[size:]
        self.data += bytes(size - len(self.data))


def visible(cache: PageCache, backing: MemoryBacking) -> bytes:
    size = cache.cached_size("f")
    return cache.read("f", backing, 0, backing.size() if size is None else size)


def test_an_unsynced_write_is_read_back_but_not_durable_and_a_loss_takes_it():
    cache, backing = PageCache(), MemoryBacking(b"durable")
    cache.write("f", backing, 7, b"+lazy")
    assert visible(cache, backing) == b"durable+lazy" and cache.cached_size("f") == 12
    assert backing.data == b"durable"
    assert cache.unsynced() == (1, 1)
    assert cache.lose() == (1, 1)
    assert cache.cached_size("f") is None and visible(cache, backing) == b"durable"


def test_sync_writes_exactly_the_file_and_forgets_it():
    cache, backing = PageCache(), MemoryBacking()
    cache.write("f", backing, 0, b"a" * (PAGE + 10))
    cache.write("g", MemoryBacking(), 0, b"other")
    assert cache.sync("f", backing) == PAGE + 10
    assert backing.data == b"a" * (PAGE + 10)
    assert cache.cached_size("f") is None and cache.unsynced() == (1, 1)
    assert cache.sync("f", backing) == 0


def test_a_partial_page_write_keeps_the_durable_bytes_around_it():
    durable = bytes(range(256)) * 40  # 10240 bytes: three pages
    cache, backing = PageCache(), MemoryBacking(durable)
    cache.write("f", backing, PAGE - 2, b"XYZW")  # across the first page boundary
    expected = durable[:PAGE - 2] + b"XYZW" + durable[PAGE + 2:]
    assert visible(cache, backing) == expected
    cache.sync("f", backing)
    assert bytes(backing.data) == expected


def test_a_write_past_the_end_leaves_a_hole_of_zeros():
    cache, backing = PageCache(), MemoryBacking(b"ab")
    cache.write("f", backing, 3 * PAGE, b"z")
    assert visible(cache, backing) == b"ab" + bytes(3 * PAGE - 2) + b"z"
    cache.sync("f", backing)
    assert bytes(backing.data) == b"ab" + bytes(3 * PAGE - 2) + b"z"


def test_truncate_drops_cached_bytes_past_the_end_and_zeros_them_on_extension():
    cache, backing = PageCache(), MemoryBacking()
    cache.write("f", backing, 0, b"x" * (2 * PAGE))
    backing.truncate(100)  # the caller passes the truncate through first
    cache.truncate("f", 100)
    assert visible(cache, backing) == b"x" * 100
    cache.write("f", backing, 200, b"y")
    assert visible(cache, backing) == b"x" * 100 + bytes(100) + b"y"
    # The truncate was metadata: after a loss the size it set stays, the bytes were never synced.
    cache.lose()
    assert visible(cache, backing) == bytes(100)


def test_forget_frees_a_deleted_file():
    cache, backing = PageCache(), MemoryBacking()
    cache.write("f", backing, 0, b"gone")
    cache.forget("f")
    assert cache.unsynced() == (0, 0)


@pytest.mark.parametrize("seed", range(30))
def test_the_cache_behaves_like_a_disk_that_keeps_only_what_was_synced(seed: int):
    """Model: `seen` is what readers see, `durable` what survives a loss."""
    rng = random.Random(seed)
    cache, backing = PageCache(), MemoryBacking(bytes(rng.randrange(256) for _ in range(rng.randrange(3 * PAGE))))
    seen, durable = bytearray(backing.data), bytearray(backing.data)
    for _ in range(60):
        op = rng.choice(["write", "write", "write", "truncate", "sync", "lose"])
        if op == "write":
            offset, data = rng.randrange(4 * PAGE), bytes(rng.randrange(256) for _ in range(rng.randrange(1, 2 * PAGE)))
            cache.write("f", backing, offset, data)
            seen += bytes(max(0, offset - len(seen)))
            seen[offset:offset + len(data)] = data
        elif op == "truncate":
            size = rng.randrange(4 * PAGE)
            backing.truncate(size)
            cache.truncate("f", size)
            seen = seen[:size] + bytes(max(0, size - len(seen)))
            durable = durable[:size] + bytes(max(0, size - len(durable)))
        elif op == "sync":
            cache.sync("f", backing)
            durable = bytearray(seen)
        else:
            cache.lose()
            seen = bytearray(durable)
        assert visible(cache, backing) == bytes(seen), op
        assert bytes(backing.data) == bytes(durable), op
