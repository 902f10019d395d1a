"""The transaction log: segment files of CRC-checked records, appended in batches, one fsync
per batch (group commit).

File `log.<first zxid, 16 hex digits>`: an 8-byte header (magic, version), then records of
`len u32 | crc32(payload) u32 | crc32(len, crc) u32 | payload`, the payload an encoded txn. The
header's own checksum tells a garbled length from a record that was simply cut short. A record
cut short or garbled at the very end of the newest segment is a write torn by a crash: it is cut
off with a warning. Damage anywhere else is corruption and stops start-up.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from pathlib import Path
from typing import Iterator

from ..txn import Txn, TxnHeader, decode_txn, encode_txn

log = logging.getLogger(__name__)

MAGIC = b"ZKCL\x00\x00\x00\x01"
RECORD = struct.Struct(">III")
_LEN_CRC = struct.Struct(">II")
_U32 = struct.Struct(">I")
PREFIX = "log."


class CorruptLogError(RuntimeError):
    """The log is damaged somewhere other than its tail; starting would lose committed txns."""


def segment_name(first_zxid: int) -> str:
    return f"{PREFIX}{first_zxid:016x}"


def segment_zxid(path: Path) -> int:
    return int(path.name[len(PREFIX) :], 16)


def segments(directory: Path) -> list[Path]:
    if not directory.exists():
        return []
    found = [p for p in directory.iterdir() if p.name.startswith(PREFIX) and not p.name.endswith(".tmp")]
    return sorted(found, key=segment_zxid)


def encode_record(hdr: TxnHeader, txn: Txn) -> bytes:
    return record_of(encode_txn(hdr, txn))


def record_of(payload: bytes) -> bytes:
    """A log record around an already encoded txn."""
    head = _LEN_CRC.pack(len(payload), zlib.crc32(payload))
    return head + _U32.pack(zlib.crc32(head)) + payload


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class TxnLog:
    """Appends to the newest segment. `append` is safe to run in a worker thread as long as
    only one append runs at a time (the shell keeps one batch in flight)."""

    def __init__(self, directory: Path, force_sync: bool = True) -> None:
        self.directory = directory
        self.force_sync = force_sync
        self.fd: int | None = None
        self.current: Path | None = None
        directory.mkdir(parents=True, exist_ok=True)

    def roll(self, next_zxid: int) -> None:
        """Start a new segment; the next record appended should carry `next_zxid`."""
        self.close()
        path = self.directory / segment_name(next_zxid)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        if os.fstat(fd).st_size == 0:
            os.write(fd, MAGIC)
        if self.force_sync:
            os.fsync(fd)
            _fsync_dir(self.directory)
        self.fd, self.current = fd, path

    def append(self, data: bytes) -> None:
        """Write encoded records and make them durable before returning."""
        assert self.fd is not None, "roll() before append()"
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]
        if self.force_sync:
            os.fdatasync(self.fd)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _valid_record_after(data: bytes, start: int) -> bool:
    """Whether a whole, checksummed record starts anywhere at or after `start`: then the damage
    before it is corruption, not a torn tail. Only runs after a crash left a garbled header."""
    end = len(data)
    for p in range(start, end - RECORD.size + 1):
        length, crc, head_crc = RECORD.unpack_from(data, p)
        if zlib.crc32(data[p : p + 8]) != head_crc:
            continue
        body_end = p + RECORD.size + length
        if body_end <= end and zlib.crc32(data[p + RECORD.size : body_end]) == crc:
            return True
    return False


def _read_segment(path: Path, is_last: bool) -> Iterator[tuple[TxnHeader, Txn]]:
    data = path.read_bytes()
    if len(data) < len(MAGIC):
        if is_last:
            log.warning("%s: header cut short by a crash; removing the empty segment", path)
            path.unlink()
            return
        raise CorruptLogError(f"{path}: file shorter than its header")
    if data[: len(MAGIC)] != MAGIC:
        raise CorruptLogError(f"{path}: not a zkchaos transaction log (bad magic)")
    pos = len(MAGIC)
    end = len(data)
    while pos < end:
        problem = None
        if pos + RECORD.size > end:
            problem = "record header cut short"
        else:
            length, crc, head_crc = RECORD.unpack_from(data, pos)
            body_end = pos + RECORD.size + length
            if not any(data[pos : pos + RECORD.size]):
                problem = "zero-filled tail"
                body_end = pos
            elif zlib.crc32(data[pos : pos + 8]) != head_crc:
                problem = "garbled record header"
                body_end = pos
            elif body_end > end:
                problem = f"record of {length} bytes cut short"
            elif zlib.crc32(data[pos + RECORD.size : body_end]) != crc:
                problem = "checksum mismatch"
            torn = body_end >= end or not any(data[body_end:])
            if problem == "garbled record header":
                torn = not _valid_record_after(data, pos + 1)
            if problem is not None and not torn:
                raise CorruptLogError(
                    f"{path}: {problem} in the record at offset {pos}, with valid-looking data "
                    f"after it; refusing to start (restore the log or remove the damaged file by hand)"
                )
        if problem is not None:
            if not is_last:
                raise CorruptLogError(f"{path}: {problem} at offset {pos} in a segment that is not the newest")
            log.warning("%s: %s at offset %d (a write torn by a crash); cutting %d bytes", path, problem, pos, end - pos)
            with open(path, "r+b") as f:
                f.truncate(pos)
                f.flush()
                os.fsync(f.fileno())
            return
        yield decode_txn(data[pos + RECORD.size : body_end])
        pos = body_end


def read_log(directory: Path, after_zxid: int) -> Iterator[tuple[TxnHeader, Txn]]:
    """Every logged txn with zxid > after_zxid, in order. Cuts a torn tail; raises
    CorruptLogError on damage elsewhere."""
    segs = segments(directory)
    # Skip segments that end before after_zxid: those followed by one starting at or below it + 1.
    start = 0
    for i, seg in enumerate(segs):
        if segment_zxid(seg) <= after_zxid + 1:
            start = i
    if segs and segment_zxid(segs[start]) > after_zxid + 1:
        raise CorruptLogError(
            f"{segs[start]}: the log resumes after 0x{segment_zxid(segs[start]) - 1:x} but the state on "
            f"disk ends at 0x{after_zxid:x}; txns in between are missing, refusing to start"
        )
    last_zxid = after_zxid
    for i, seg in enumerate(segs[start:], start):
        # A segment is named after the zxid that follows the last one logged before it, so a
        # name beyond that means a segment in between is gone.
        if i > start and segment_zxid(seg) > last_zxid + 1:
            raise CorruptLogError(
                f"{seg}: the log jumps from 0x{last_zxid:x} to a segment starting at "
                f"0x{segment_zxid(seg):x}; txns in between are missing, refusing to start"
            )
        for hdr, txn in _read_segment(seg, is_last=(i == len(segs) - 1)):
            if hdr.zxid <= after_zxid:
                last_zxid = max(last_zxid, hdr.zxid)
                continue
            if hdr.zxid <= last_zxid:
                raise CorruptLogError(f"{seg}: zxid 0x{hdr.zxid:x} follows 0x{last_zxid:x}; log out of order")
            last_zxid = hdr.zxid
            yield hdr, txn


def truncate_log(directory: Path, zxid: int) -> None:
    """Cut the log after `zxid`: later segments go, the one holding `zxid` is cut short."""
    for seg in segments(directory):
        if segment_zxid(seg) > zxid + 1:
            seg.unlink()
            continue
        data = seg.read_bytes()
        pos = len(MAGIC)
        while pos + RECORD.size <= len(data):
            length = RECORD.unpack_from(data, pos)[0]
            end = pos + RECORD.size + length
            if end > len(data):
                break
            hdr, _ = decode_txn(data[pos + RECORD.size : end])
            if hdr.zxid > zxid:
                break
            pos = end
        if pos < len(data):
            with open(seg, "r+b") as f:
                f.truncate(pos)
                f.flush()
                os.fsync(f.fileno())
