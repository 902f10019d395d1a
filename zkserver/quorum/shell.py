"""The asyncio shell of an ensemble member: election and quorum sockets, the client port, the
log, epochs and timers around a QuorumPeer.

Election: every member keeps an outbound connection to every other one's election port and
only ever writes on it (the first frame names the sender); inbound connections are only read.
Quorum: the leader accepts learners on its quorum port; a learner dials the leader's.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Hashable

from ..config import ServerConfig
from ..core import ServerCore
from ..fourletter import FourLetterWords
from ..protocol.jute import INT
from ..server import TICK_SECONDS, SnapshotPolicy, listen_for_clients, monotonic_ms, wall_ms
from ..storage.groupcommit import GroupCommitLog
from ..storage.store import Storage
from ..tree.datatree import DataTree
from .history import DEFAULT_WINDOW, History
from .messages import (
    Notification,
    Packet,
    PeerState,
    decode_notification,
    decode_packet,
    encode_notification,
    encode_packet,
)
from .peer import QuorumPeer

log = logging.getLogger(__name__)

LEADER_DIAL_PAUSE = 0.1  # seconds between dials to the leader (ZooKeeper's default)
# An election dial gives up after this long (ZooKeeper's cnxTimeout): a peer behind a firewall
# that drops packets would otherwise hold the dial for the kernel's whole SYN retry schedule
# (minutes), and a healed peer would be heard from only at the next retransmission.
ELECTION_CONNECT_TIMEOUT = 5.0
# An established election link whose peer went silent (a firewall now drops its packets) would
# hold our notifications in the send buffer, retransmitted on the kernel's doubling schedule:
# after a two-minute partition the peer hears us a minute or more after the heal. Data left
# unacknowledged this long closes the link instead, and the dial loop above takes over.
ELECTION_USER_TIMEOUT_MS = int(ELECTION_CONNECT_TIMEOUT * 1000)

MAX_PEER_FRAME = 1 << 30
ELECTION_TICK_SECONDS = 0.005
SID = struct.Struct(">q")


def _give_up_unacknowledged(proto: FramedProtocol, ms: int) -> None:
    """TCP_USER_TIMEOUT (Linux): the kernel closes the link when sent data stays unacknowledged
    for `ms`. Elsewhere the option does not exist and links wait for the kernel as before."""
    option = getattr(socket, "TCP_USER_TIMEOUT", None)
    sock = proto.transport.get_extra_info("socket") if proto.transport is not None else None
    if option is None or sock is None:
        return
    try:
        sock.setsockopt(socket.IPPROTO_TCP, option, ms)
    except OSError as e:
        log.debug("TCP_USER_TIMEOUT not set on an election link: %s", e)


class FramedProtocol(asyncio.Protocol):
    """Length-prefixed frames in both directions."""

    def __init__(self, on_frame: Callable[["FramedProtocol", bytes], None], on_lost: Callable[["FramedProtocol"], None]) -> None:
        self.on_frame = on_frame
        self.on_lost = on_lost
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.peer_sid: int | None = None
        self.open = False
        self.out: list[bytes] = []

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport
        self.open = True

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        pos, end = 0, len(buf)
        while end - pos >= 4:
            (n,) = INT.unpack_from(buf, pos)
            if n < 0 or n > MAX_PEER_FRAME:
                # A peer speaking nonsense: drop the link, and let the peer logic know (our
                # own deliberate closes do not report back, this one must).
                self.close()
                self.on_lost(self)
                return
            if end - pos - 4 < n:
                break
            frame = bytes(buf[pos + 4 : pos + 4 + n])
            pos += 4 + n
            self.on_frame(self, frame)
            if not self.open:
                return
        del buf[:pos]

    def send(self, payload: bytes) -> None:
        """Queued and written once at the end of this loop turn: proposals, acks and commits
        made while handling one batch of input leave in one system call."""
        if not self.open or self.transport is None:
            return
        if not self.out:
            asyncio.get_running_loop().call_soon(self._flush)
        self.out.append(INT.pack(len(payload)))
        self.out.append(payload)

    def _flush(self) -> None:
        out, self.out = self.out, []
        if out and self.open and self.transport is not None:
            self.transport.write(b"".join(out))

    def close(self) -> None:
        if self.open:
            self.open = False
            if self.transport is not None:
                self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        was_open = self.open
        self.open = False
        if was_open or exc is not None:
            self.on_lost(self)


class EnsembleServer:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.my_id = config.server_id
        self.storage = Storage(config)
        self.storage.keep_replayed = DEFAULT_WINDOW
        self.pool = ThreadPoolExecutor(2, thread_name_prefix="zk-io")
        self.snapshots = SnapshotPolicy(config, self.storage, self.pool)
        self.failure: BaseException | None = None
        self.stopped = asyncio.Event()
        self.running = False
        self.election_out: dict[int, FramedProtocol] = {}
        self.dialing: set[int] = set()
        self.quorum_in: set[FramedProtocol] = set()
        self.leader_link: FramedProtocol | None = None
        self.leader_dial: asyncio.Task | None = None
        self.servers: list[asyncio.base_events.Server] = []

    # --- start / stop --------------------------------------------------------------------------

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        tree = self.storage.restore()
        history = History(self.storage.replay_floor, DEFAULT_WINDOW)
        for hdr, txn in self.storage.replayed:
            history.append(hdr, txn)
        self.storage.replayed = []
        self.accepted_epoch = self.storage.read_epoch("acceptedEpoch")
        self.current_epoch = self.storage.read_epoch("currentEpoch")
        now = monotonic_ms()
        self.core = ServerCore(self.config, tree, now, wall_ms())
        self.core.serving = False
        self.core.owns_sessions = False
        # In an ensemble the write path waits on other processes, not on our CPU: fsync on the
        # loop, which spares the GIL hand-offs to a worker.
        self.log = GroupCommitLog(self.loop, self.storage, self.pool, self._durable, self._failed, inline=True)
        self.peer = QuorumPeer(self.config, self.core, self, history, now)
        self.four_letter = FourLetterWords(self.core, self.peer.mode)
        self.four_letter.extra_mntr = self._mntr_extra
        me = self.config.peers[self.my_id]
        self.servers.append(await listen_for_clients(self, self.config))
        self.servers.append(await self.loop.create_server(lambda: self._inbound_election(), me.host, me.election_port, reuse_address=True))
        self.servers.append(await self.loop.create_server(lambda: self._inbound_quorum(), me.host, me.quorum_port, reuse_address=True))
        self.running = True
        log.info(
            "server %d: clients on %s:%d, quorum %s:%d, election %s:%d; zxid 0x%x, epoch %d/%d",
            self.my_id, self.config.client_port_address, self.config.client_port, me.host, me.quorum_port,
            me.host, me.election_port, tree.last_zxid, self.accepted_epoch, self.current_epoch,
        )
        for sid in self.config.peers:
            if sid != self.my_id:
                self._dial_election(sid)
        self.peer.start(now)
        self._tick_handle = self.loop.call_later(TICK_SECONDS, self._tick)

    async def stop(self) -> None:
        self.running = False
        self._tick_handle.cancel()
        for server in self.servers:
            server.close()
        self.close_quorum()
        for link in list(self.election_out.values()):
            link.close()
        self.core.stop_serving()
        for _ in range(200):
            if self.log.idle():
                break
            await asyncio.sleep(0.01)
        self.storage.close()
        self.pool.shutdown(wait=True)
        self.stopped.set()

    def _failed(self, exc: BaseException) -> None:
        self.failure = exc
        self.stopped.set()

    def _tick(self) -> None:
        self.peer.tick(monotonic_ms(), wall_ms())
        self.core.flush()
        # Finer ticks while electing, so the finalize wait ends when it should, not up to a
        # tick later; coarse ticks otherwise.
        interval = ELECTION_TICK_SECONDS if self.peer.state == PeerState.LOOKING else TICK_SECONDS
        self._tick_handle = self.loop.call_later(interval, self._tick)

    # --- election links ------------------------------------------------------------------------

    def _inbound_election(self) -> FramedProtocol:
        def on_frame(proto: FramedProtocol, frame: bytes) -> None:
            if proto.peer_sid is None:
                proto.peer_sid = SID.unpack(frame)[0]
                return
            try:
                n = decode_notification(frame)
            except (struct.error, ValueError):
                proto.close()
                return
            self.peer.on_notification(n, monotonic_ms())
            self.core.flush()

        return FramedProtocol(on_frame, lambda proto: None)

    def _dial_election(self, sid: int) -> None:
        if not self.running or sid in self.dialing or sid in self.election_out:
            return
        self.dialing.add(sid)
        self.loop.create_task(self._dial(sid))

    async def _dial(self, sid: int) -> None:
        peer = self.config.peers[sid]
        delay = 0.05
        try:
            while self.running:
                try:
                    _, proto = await asyncio.wait_for(self.loop.create_connection(
                        lambda: FramedProtocol(lambda p, f: None, self._election_lost), peer.host, peer.election_port
                    ), ELECTION_CONNECT_TIMEOUT)
                    proto.peer_sid = sid
                    _give_up_unacknowledged(proto, ELECTION_USER_TIMEOUT_MS)
                    proto.send(SID.pack(self.my_id))
                    self.election_out[sid] = proto
                    # Say where we stand right away: a new link is how a restarted peer rejoins.
                    if self.peer.state == PeerState.LOOKING:
                        self.peer.election.outbox.append((sid, self.peer.election._notification()))
                        for to, n in self.peer.election.take_outbox():
                            self.send_election(to, n)
                    return
                except (OSError, asyncio.TimeoutError):
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 1.0)
        finally:
            self.dialing.discard(sid)

    def _election_lost(self, proto: FramedProtocol) -> None:
        sid = proto.peer_sid
        if sid is not None and self.election_out.get(sid) is proto:
            del self.election_out[sid]
            self._dial_election(sid)

    def send_election(self, sid: int, n: Notification) -> None:
        link = self.election_out.get(sid)
        if link is None:
            self._dial_election(sid)  # the election resends; nothing is lost by dropping this one
            return
        link.send(encode_notification(n))

    # --- quorum links ----------------------------------------------------------------------------

    def _inbound_quorum(self) -> FramedProtocol:
        proto = FramedProtocol(self._leader_frame, self._learner_lost)
        orig = proto.connection_made

        def made(transport) -> None:
            orig(transport)
            if self.peer.state != PeerState.LEADING:
                proto.close()  # only a leader takes learners
                return
            self.quorum_in.add(proto)
            self.peer.on_quorum_connected(proto, monotonic_ms())

        proto.connection_made = made  # type: ignore[method-assign]
        return proto

    def _leader_frame(self, proto: FramedProtocol, frame: bytes) -> None:
        self.peer.on_packet(proto, decode_packet(frame), monotonic_ms(), wall_ms())
        self.core.flush()

    def _learner_lost(self, proto: FramedProtocol) -> None:
        if proto in self.quorum_in:
            self.quorum_in.discard(proto)
            self.peer.on_quorum_lost(proto, monotonic_ms())
            self.core.flush()

    def connect_leader(self, sid: int, retry: bool = False) -> None:
        self.leader_dial = self.loop.create_task(self._dial_leader(sid, retry))

    async def _dial_leader(self, sid: int, retry: bool) -> None:
        """One attempt; the learner decides whether to try again (see LEADER_DIAL_TRIES)."""
        peer = self.config.peers[sid]
        if retry:
            await asyncio.sleep(LEADER_DIAL_PAUSE)
        if not self.running:
            return
        proto: FramedProtocol | None = None
        try:
            # A partitioned leader drops our SYNs: give up when initLimit would, not after
            # the kernel's minutes of retransmissions.
            _, proto = await asyncio.wait_for(
                self.loop.create_connection(
                    lambda: FramedProtocol(self._learner_frame, self._leader_lost), peer.host, peer.quorum_port
                ),
                self.config.init_limit * self.config.tick_time / 1000,
            )
        except (OSError, asyncio.TimeoutError):
            pass
        if self.leader_link is not None:
            self.leader_link.close()  # a link from an earlier dial must not linger
        # A link the other side closed before this task resumed counts as a failed dial: its
        # loss was reported to nobody.
        self.leader_link = proto if proto is not None and proto.open else None
        if self.leader_link is None:
            self.peer.on_quorum_lost("leader", monotonic_ms())
        else:
            self.peer.on_quorum_connected("leader", monotonic_ms())
        self.core.flush()

    def _learner_frame(self, proto: FramedProtocol, frame: bytes) -> None:
        if proto is not self.leader_link:
            return
        self.peer.on_packet("leader", decode_packet(frame), monotonic_ms(), wall_ms())
        self.core.flush()

    def _leader_lost(self, proto: FramedProtocol) -> None:
        if proto is self.leader_link:
            self.leader_link = None
            self.peer.on_quorum_lost("leader", monotonic_ms())
            self.core.flush()

    def send_quorum(self, handle: Hashable, p: Packet) -> None:
        link = self.leader_link if handle == "leader" else handle
        if isinstance(link, FramedProtocol):
            link.send(encode_packet(p))

    def close_link(self, handle: Hashable) -> None:
        if isinstance(handle, FramedProtocol):
            self.quorum_in.discard(handle)
            handle.close()

    def close_quorum(self) -> None:
        if self.leader_dial is not None:
            self.leader_dial.cancel()
            self.leader_dial = None
        link, self.leader_link = self.leader_link, None
        if link is not None:
            link.close()
        for proto in list(self.quorum_in):
            proto.close()
        self.quorum_in.clear()

    # --- disk ------------------------------------------------------------------------------------

    def append_log(self, batch: list, payloads: list[bytes] | None = None) -> None:
        self.log.append(batch, payloads)

    def _durable(self, batch: list) -> None:
        self.peer.logged(batch[-1][0].zxid)
        self.core.flush()
        self.snapshots.after_batch(self.loop, self.core.tree, len(batch), self.log.last_appended + 1)

    def quiesce_log(self) -> int | None:
        return self.log.quiesce()

    def set_accepted_epoch(self, epoch: int) -> None:
        self.storage.write_epoch("acceptedEpoch", epoch)
        self.accepted_epoch = epoch

    def set_current_epoch(self, epoch: int) -> None:
        self.storage.write_epoch("currentEpoch", epoch)
        self.current_epoch = epoch

    def truncate(self, zxid: int) -> DataTree:
        self.log.quiesce()
        return self.storage.truncate(zxid)

    def install_snapshot(self, tree: DataTree) -> None:
        self.log.quiesce()
        self.storage.install(tree)

    # --- status ----------------------------------------------------------------------------------

    def _mntr_extra(self) -> list[tuple[str, object]]:
        log_ = self.log
        rows: list[tuple[str, object]] = [
            ("peer_state", self.peer.mode()),
            ("current_epoch", self.current_epoch),
            ("log_batches", log_.batches),
            ("log_txns", log_.txns),
            ("log_busy_ms", int(log_.busy_s * 1000)),
        ]
        role = self.peer.role
        if self.peer.state == PeerState.LEADING and role is not None:
            links = [ln for ln in role.links.values() if ln.sid >= 0]
            rows += [
                ("followers", len([ln for ln in links if not ln.observer])),
                ("synced_followers", len([ln for ln in links if ln.newleader_acked and not ln.observer])),
                ("synced_observers", len([ln for ln in links if ln.newleader_acked and ln.observer])),
                ("pending_syncs", len(role.syncs)),
                ("last_proposal_zxid", f"0x{role.peer.history.last_zxid:x}"),
            ]
        return rows
