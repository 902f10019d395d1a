"""Response frames: a 4-byte length, a ReplyHeader, and (only when err is 0) a body."""

from __future__ import annotations

import struct
from typing import Iterable

from .constants import KeeperState, NOTIFICATION_XID
from .jute import INT, Writer, java_utf8
from .records import ACL, STAT, write_acls

# length + ReplyHeader{xid, zxid, err}
FRAME_HEADER = struct.Struct(">iiqi")
HEADER_SIZE = 16  # xid + zxid + err
MULTI_HEADER = struct.Struct(">i?i")
MULTI_END = MULTI_HEADER.pack(-1, True, -1)
_LEN_BUF = struct.Struct(">i")


def header_only(xid: int, zxid: int, err: int = 0) -> bytes:
    return FRAME_HEADER.pack(HEADER_SIZE, xid, zxid, err)


def frame(xid: int, zxid: int, body: bytes) -> bytes:
    return FRAME_HEADER.pack(HEADER_SIZE + len(body), xid, zxid, 0) + body


def data_and_stat(xid: int, zxid: int, data: bytes | None, stat: tuple) -> bytes:
    """getData: buffer + Stat, fused into as few allocations as possible."""
    if data is None:
        return FRAME_HEADER.pack(HEADER_SIZE + 72, xid, zxid, 0) + b"\xff\xff\xff\xff" + STAT.pack(*stat)
    n = len(data)
    return b"".join(
        (FRAME_HEADER.pack(HEADER_SIZE + 72 + n, xid, zxid, 0), _LEN_BUF.pack(n), data, STAT.pack(*stat))
    )


def stat_only(xid: int, zxid: int, stat: tuple) -> bytes:
    return FRAME_HEADER.pack(HEADER_SIZE + 68, xid, zxid, 0) + STAT.pack(*stat)


def path_body(path: str, stat: tuple | None = None) -> bytes:
    raw = java_utf8(path)
    body = INT.pack(len(raw)) + raw
    return body if stat is None else body + STAT.pack(*stat)


def strings_body(items: Iterable[str]) -> bytes:
    items = list(items)
    w = Writer().int(len(items))
    for s in items:
        w.ustring(s)
    return w.bytes()


def acl_body(acls: tuple[ACL, ...] | list[ACL], stat: tuple) -> bytes:
    return write_acls(Writer(), acls).raw(STAT.pack(*stat)).bytes()


def notification(event_type: int, path: str, zxid: int = -1) -> bytes:
    raw = java_utf8(path)
    body = struct.pack(">ii", event_type, KeeperState.SYNC_CONNECTED) + INT.pack(len(raw)) + raw
    return frame(NOTIFICATION_XID, zxid, body)


def connect_response(timeout: int, session_id: int, passwd: bytes, read_only: bool | None) -> bytes:
    """ConnectResponse, with the trailing readOnly byte only for clients that sent one."""
    body = struct.pack(">iiqi", 0, timeout, session_id, len(passwd)) + passwd
    if read_only is not None:
        body += b"\x01" if read_only else b"\x00"
    return INT.pack(len(body)) + body
