"""What ensemble members say to each other: election notifications and quorum packets.

A quorum packet is `type u8 | zxid i64 | body`; its framing on the wire is the usual 4-byte
length. Bodies are jute-encoded. The set of packets follows ZAB's phases: discovery
(FOLLOWERINFO, LEADERINFO, ACKEPOCH), synchronisation (SYNC_DATA, NEWLEADER, UPTODATE) and
broadcast (PROPOSAL, ACK, COMMIT, INFORM), plus PING, REQUEST and SYNC for clients' sake.
"""

from __future__ import annotations

import struct
from enum import IntEnum
from typing import NamedTuple

from ..acl import Id
from ..prep import Request
from ..protocol.jute import Reader, Writer
from ..txn import Txn, TxnHeader, decode_txn, encode_txn


class PeerState(IntEnum):
    LOOKING = 0
    FOLLOWING = 1
    LEADING = 2
    OBSERVING = 3


class Vote(NamedTuple):
    leader: int
    zxid: int
    peer_epoch: int


class Notification(NamedTuple):
    """A vote with its sender's state and election round (FastLeaderElection)."""

    vote: Vote
    election_epoch: int
    state: PeerState
    sid: int


_NOTIFICATION = struct.Struct(">qqqqbq")


def encode_notification(n: Notification) -> bytes:
    return _NOTIFICATION.pack(n.vote.leader, n.vote.zxid, n.vote.peer_epoch, n.election_epoch, n.state, n.sid)


def decode_notification(raw: bytes) -> Notification:
    leader, zxid, peer_epoch, election_epoch, state, sid = _NOTIFICATION.unpack(raw)
    return Notification(Vote(leader, zxid, peer_epoch), election_epoch, PeerState(state), sid)


class Kind(IntEnum):
    FOLLOWERINFO = 1  # learner -> leader: sid, acceptedEpoch, last logged zxid, observer?
    LEADERINFO = 2  # leader -> learner: the new epoch
    ACKEPOCH = 3  # learner -> leader: currentEpoch, last logged zxid
    SYNC_DATA = 4  # leader -> learner: truncate-to / snapshot / txns to log, committed mark
    NEWLEADER = 5  # leader -> learner: sync sent; make it durable and ack
    ACK = 6  # learner -> leader: zxid durable (NEWLEADER uses zxid = epoch << 32)
    UPTODATE = 7  # leader -> learner: start serving; everything <= zxid is committed
    PROPOSAL = 8  # leader -> follower: a txn to log
    COMMIT = 9  # leader -> follower: zxid is committed
    INFORM = 10  # leader -> observer: a committed txn
    PING = 11  # both ways; learner -> leader carries session touches
    REQUEST = 12  # learner -> leader: a client write to prep
    SYNC = 13  # learner -> leader: a client's sync; leader -> learner: it is done
    REVALIDATE = 14  # learner -> leader: is this reconnecting session alive? and the answer


class Packet(NamedTuple):
    kind: Kind
    zxid: int
    body: bytes = b""


_HEAD = struct.Struct(">bq")


def encode_packet(p: Packet) -> bytes:
    return _HEAD.pack(p.kind, p.zxid) + p.body


def decode_packet(raw: bytes) -> Packet:
    kind, zxid = _HEAD.unpack_from(raw)
    return Packet(Kind(kind), zxid, raw[_HEAD.size :])


# --- bodies ----------------------------------------------------------------------------------


class FollowerInfo(NamedTuple):
    sid: int
    accepted_epoch: int
    last_zxid: int
    observer: bool


def follower_info(info: FollowerInfo) -> Packet:
    body = Writer().long(info.sid).long(info.accepted_epoch).bool(info.observer).bytes()
    return Packet(Kind.FOLLOWERINFO, info.last_zxid, body)


def read_follower_info(p: Packet) -> FollowerInfo:
    r = Reader(p.body)
    return FollowerInfo(r.long(), r.long(), p.zxid, r.bool())


def ack_epoch(current_epoch: int, last_zxid: int) -> Packet:
    return Packet(Kind.ACKEPOCH, last_zxid, Writer().long(current_epoch).bytes())


def read_ack_epoch(p: Packet) -> tuple[int, int]:
    return Reader(p.body).long(), p.zxid


class SyncData(NamedTuple):
    """How a learner catches up. `truncate_to` cuts its log first (None: no cut); `snapshot`
    replaces its state (None: keep it); `txns` follow in order; everything up to
    `committed_zxid` among them is committed, the rest are outstanding proposals."""

    truncate_to: int | None
    snapshot: bytes | None
    txns: list[tuple[TxnHeader, Txn]]
    committed_zxid: int


def sync_data(s: SyncData) -> Packet:
    w = Writer()
    w.bool(s.truncate_to is not None).long(s.truncate_to or 0)
    w.buffer(s.snapshot)
    w.int(len(s.txns))
    for hdr, txn in s.txns:
        w.buffer(encode_txn(hdr, txn))
    return Packet(Kind.SYNC_DATA, s.committed_zxid, w.bytes())


def read_sync_data(p: Packet) -> SyncData:
    r = Reader(p.body, max_buffer=1 << 31)
    has_trunc, trunc = r.bool(), r.long()
    snapshot = r.buffer()
    txns = [decode_txn(r.buffer() or b"") for _ in range(r.int())]
    return SyncData(trunc if has_trunc else None, snapshot, txns, p.zxid)


_ORIGIN = struct.Struct(">iq")
ORIGIN_SIZE = _ORIGIN.size  # the trailer after a proposal's txn
NO_ORIGIN = (-1, -1)


def proposal(hdr: TxnHeader, txn: Txn, kind: Kind = Kind.PROPOSAL, origin: tuple[int, int] | None = None) -> Packet:
    """The encoded txn (what the log stores), then the client request it answers, if any."""
    return Packet(kind, hdr.zxid, encode_txn(hdr, txn) + _ORIGIN.pack(*(origin or NO_ORIGIN)))


def read_proposal(p: Packet) -> tuple[TxnHeader, Txn, tuple[int, int] | None, bytes]:
    """(header, txn, origin, the txn's encoding for the log)."""
    payload = p.body[: -_ORIGIN.size]
    origin = _ORIGIN.unpack_from(p.body, len(payload))
    hdr, txn = decode_txn(payload)
    return hdr, txn, (None if origin == NO_ORIGIN else origin), payload


def ping(touches: dict[int, int] | None = None) -> Packet:
    """Learner pings carry the sessions its clients touched (id -> timeout)."""
    w = Writer()
    items = touches or {}
    w.int(len(items))
    for sid, timeout in items.items():
        w.long(sid).int(timeout)
    return Packet(Kind.PING, 0, w.bytes())


def read_ping(p: Packet) -> dict[int, int]:
    if not p.body:
        return {}
    r = Reader(p.body)
    return {r.long(): r.int() for _ in range(r.int())}


def request(req: Request) -> Packet:
    w = Writer().long(req.session_id).int(req.cxid).int(req.opcode).buffer(req.body)
    w.int(len(req.ids))
    for ident in req.ids:
        w.ustring(ident.scheme).ustring(ident.id)
    server, seq = req.origin or NO_ORIGIN
    w.int(server).long(seq)
    return Packet(Kind.REQUEST, 0, w.bytes())


def read_request(p: Packet) -> Request:
    r = Reader(p.body, max_buffer=1 << 31)
    sid, cxid, opcode, body = r.long(), r.int(), r.int(), r.buffer() or b""
    ids = tuple(Id(r.ustring() or "", r.ustring() or "") for _ in range(r.int()))
    origin = (r.int(), r.long())
    return Request(sid, cxid, opcode, body, ids, None if origin == NO_ORIGIN else origin)


def revalidate(session_id: int, timeout_or_valid: int) -> Packet:
    """Learner -> leader: (session, negotiated timeout); leader -> learner: (session, 1|0)."""
    return Packet(Kind.REVALIDATE, 0, Writer().long(session_id).int(timeout_or_valid).bytes())


def read_revalidate(p: Packet) -> tuple[int, int]:
    r = Reader(p.body)
    return r.long(), r.int()


def sync_request(session_id: int, cxid: int) -> Packet:
    return Packet(Kind.SYNC, 0, Writer().long(session_id).int(cxid).bytes())


def read_sync(p: Packet) -> tuple[int, int]:
    r = Reader(p.body)
    return r.long(), r.int()
