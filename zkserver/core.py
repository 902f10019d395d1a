"""The server core: connections, sessions, per-session order, reads, writes, watches.

No sockets, clocks or files. The shell feeds it events (a frame arrived, a connection went away,
time passed, a batch of txns is durable) and drains what it produced: bytes per connection
(`flush`) and txns to make durable (`take_log`).

Order: each session's requests take effect and are answered in the order sent. A read is served
from the replica at once unless the session still waits for an earlier write; then it queues
behind that write. Writes go through prep -> log -> `committed` (apply, watch events, reply).
"""

from __future__ import annotations

from collections import deque
from typing import Callable, NamedTuple

from . import acl as aclmod
from .config import ServerConfig
from .connection import Conn
from .prep import Preparer, Request, close_session_request, create_session_request, delete_container_request
from .protocol import replies
from .protocol.constants import AUTH_XID, PING_XID, Err, OpCode, Perm, WRITE_OPS, ZkError
from .protocol.jute import INT, INT_INT, JuteError
from .protocol.records import OPEN_ACL_UNSAFE
from .protocol.replies import FRAME_HEADER, HEADER_SIZE
from .protocol.records import decode_connect, decode_request
from .reads import READS, ReadContext, serve_read
from .sessions import SessionTracker, session_password
from .stats import ServerStats
from .tree.datatree import DataTree, Trigger
from .tree.node import ttl_of
from .txn import CreateSessionTxn, Txn, TxnHeader
from .watches import WatchManager
from .write_replies import write_reply

# Entry kinds in a session's queue: waiting for a txn, to serve, a ready reply, waiting for the
# session's createSession, waiting for the leader to answer a sync.
WRITE, READ, READY, CONNECT, SYNC, REVALIDATE = 0, 1, 2, 3, 4, 5


class Entry(NamedTuple):
    kind: int
    conn: Conn
    xid: int
    opcode: int
    payload: bytes  # READ: the frame; READY: the reply bytes
    start_ms: int
    ids: tuple | None = None  # a queued read is checked against the ids it was sent with
    seq: int = 0  # WRITE/CONNECT: the number its request carries as origin


# Writes a client may send (check only inside multi; the others are the server's own).
CLIENT_WRITES = WRITE_OPS - {OpCode.CHECK, OpCode.CREATE_SESSION, OpCode.DELETE_CONTAINER}


class ServerCore:
    def __init__(self, config: ServerConfig, tree: DataTree, now_ms: int, wall_ms: int) -> None:
        self.config = config
        self.tree = tree
        self.tracker = SessionTracker(config.tick_time, config.server_id, now_ms, wall_ms)
        for sid, timeout in tree.sessions.items():
            self.tracker.add(sid, timeout, now_ms)
        self.preparer = Preparer(tree, self.tracker, config.extended_types, config.max_buffer)
        self.watches = WatchManager()
        self.queues: dict[int, deque[Entry]] = {}
        self.session_conn: dict[int, Conn] = {}
        self.conns: set[Conn] = set()
        self.conns_per_host: dict[str, int] = {}
        self.dirty: list[Conn] = []
        self.to_log: list[tuple[TxnHeader, Txn]] = []
        self.on_log: Callable[[], None] = lambda: None  # the shell's "there is work to log" hook
        self.containers_in_flight: set[str] = set()
        self.next_container_check = now_ms + config.container_check_interval_ms
        self.now_ms = now_ms
        self.stats = ServerStats(now_ms)
        self.serving = True
        # Ensemble roles rewire these: where writes go (prep here, or the leader), where a
        # sync goes (None: answer it here), whether this server expires sessions, and whether
        # to remember which sessions its clients touched (a learner reports them to the leader).
        self.submit: Callable[[Request, int], None] = self._prep_locally
        self.forward_sync: Callable[[int, int], None] | None = None
        # A learner asks the leader whether a reconnecting session lives (and moves it here);
        # None: decide from our own table.
        self.revalidate: Callable[[int, int], None] | None = None
        # Standalone, a commit without an origin is matched to the session's head request by
        # xid; in an ensemble only a matching origin is answered.
        self.answer_unlabelled = True
        self.seq = 0
        # Read-only mode (readonlymode.enabled): a server cut off from its quorum serves reads
        # to clients that ask for a read-only session; their sessions are local to it.
        self.read_only = False
        self.owns_sessions = True
        self.touches: dict[int, int] | None = None

    # --- output ----------------------------------------------------------------------------

    def _send(self, conn: Conn, data: bytes) -> None:
        if conn.closed:
            return
        conn.out.append(data)
        conn.sent += 1
        if not conn.dirty:
            conn.dirty = True
            self.dirty.append(conn)

    def _close(self, conn: Conn) -> None:
        """Close after whatever is queued for it has been written."""
        if conn.closed or conn.closing:
            return
        conn.closing = True
        if not conn.dirty:
            conn.dirty = True
            self.dirty.append(conn)

    def flush(self) -> None:
        dirty, self.dirty = self.dirty, []
        for conn in dirty:
            conn.dirty = False
            if conn.out and not conn.closed:
                data = conn.out[0] if len(conn.out) == 1 else b"".join(conn.out)
                conn.out.clear()
                self.stats.packets_sent += 1
                conn.send(data)
            if conn.closing and not conn.closed:
                conn.close()
                self.connection_lost(conn)

    def take_log(self) -> list[tuple[TxnHeader, Txn]]:
        batch, self.to_log = self.to_log, []
        return batch

    # --- connections -----------------------------------------------------------------------

    def connection_made(self, conn: Conn) -> bool:
        """Accept unless the host already holds maxClientCnxns connections."""
        limit = self.config.max_client_cnxns
        count = self.conns_per_host.get(conn.host, 0)
        if limit and count >= limit:
            return False
        self.conns_per_host[conn.host] = count + 1
        self.conns.add(conn)
        return True

    def connection_lost(self, conn: Conn) -> None:
        if conn.closed:
            return
        conn.closed = True
        if conn in self.conns:
            self.conns.discard(conn)
            left = self.conns_per_host.get(conn.host, 1) - 1
            if left:
                self.conns_per_host[conn.host] = left
            else:
                self.conns_per_host.pop(conn.host, None)
        self.watches.remove_watcher(conn)
        sid = conn.session_id
        if sid is not None and self.session_conn.get(sid) is conn:
            del self.session_conn[sid]

    # --- input -----------------------------------------------------------------------------

    def receive(self, conn: Conn, payload: bytes, now_ms: int, wall_ms: int) -> None:
        """One frame (without its length prefix) from a client."""
        self.now_ms = now_ms
        self.stats.packets_received += 1
        conn.received += 1
        if conn.closing or conn.closed:
            return
        if conn.session_id is None:
            self._connect(conn, payload, now_ms, wall_ms)
            return
        if len(payload) < 8:
            self._close(conn)  # cannot even read a RequestHeader
            return
        xid, opcode = INT_INT.unpack_from(payload)
        sid = conn.session_id
        if not self.tracker.touch(sid, now_ms):
            # The session is closing (closed by its client, or expired): nothing more is
            # answered; the closeSession's commit replies and closes the connection.
            return
        if self.touches is not None:
            self.touches[sid] = conn.timeout
        if xid == PING_XID and opcode == OpCode.PING:
            # In the session's order, like every other reply.
            self._enqueue(sid, Entry(READY, conn, xid, opcode, replies.header_only(PING_XID, self.tree.last_zxid), now_ms))
            return
        conn.last_cxid = xid
        if self.read_only and (opcode in CLIENT_WRITES or opcode == OpCode.SYNC):
            if opcode == OpCode.CLOSE_SESSION:  # a local session: nothing to replicate
                self._send(conn, replies.header_only(xid, self.tree.last_zxid))
                self.tracker.remove(sid)
                self._close(conn)
                return
            reply = replies.header_only(xid, self.tree.last_zxid, Err.NOTREADONLY)
            self._enqueue(sid, Entry(READY, conn, xid, opcode, reply, now_ms))
            return
        if opcode == OpCode.AUTH:
            self._auth(conn, payload)
        elif opcode in CLIENT_WRITES:
            self.seq += 1
            self._enqueue(sid, Entry(WRITE, conn, xid, opcode, b"", now_ms, seq=self.seq))
            self.submit(Request(sid, xid, opcode, payload[8:], tuple(conn.ids), (self.config.server_id, self.seq)), wall_ms)
        elif opcode == OpCode.SYNC and self.forward_sync is not None:
            self._enqueue(sid, Entry(SYNC, conn, xid, opcode, payload, now_ms))
            self.forward_sync(sid, xid)
        elif opcode == OpCode.GET_DATA and sid not in self.queues and self._fast_get_data(conn, xid, payload):
            return
        elif opcode in READS:
            self._enqueue(sid, Entry(READ, conn, xid, opcode, payload, now_ms))
        else:
            # Unknown opcode, a top-level check, sasl, reconfig: the connection stays usable.
            # An ensemble answers reconfig as ZooKeeper does with reconfigEnabled=false.
            err = Err.RECONFIGDISABLED if opcode == OpCode.RECONFIG and self.config.peers else Err.UNIMPLEMENTED
            self._enqueue(sid, Entry(READY, conn, xid, opcode, replies.header_only(xid, self.tree.last_zxid, err), now_ms))

    def _connect(self, conn: Conn, payload: bytes, now_ms: int, wall_ms: int) -> None:
        if not self.serving:
            self._close(conn)  # not in a quorum's broadcast phase: the client tries another server
            return
        try:
            req = decode_connect(payload)
        except JuteError:
            self._close(conn)
            return
        if req.last_zxid_seen > self.tree.last_zxid:
            # The client has seen a newer state than ours: it must try another server.
            self._close(conn)
            return
        timeout = self.config.negotiate_timeout(req.timeout)
        conn.old_client = req.read_only is None
        conn.timeout = timeout
        conn.established_ms = now_ms
        if self.read_only:
            self._connect_read_only(conn, req, timeout, now_ms)
            return
        if req.session_id == 0:
            sid = self.tracker.new_id()
            self.tracker.add(sid, timeout, now_ms)
            self._bind(conn, sid)
            self.seq += 1
            self._enqueue(sid, Entry(CONNECT, conn, 0, OpCode.CREATE_SESSION, b"", now_ms, seq=self.seq))
            request = create_session_request(sid, timeout)._replace(origin=(self.config.server_id, self.seq))
            self.submit(request, wall_ms)
            return
        sid = req.session_id
        old = self.session_conn.get(sid)
        if old is not None and old is not conn:
            # The session moved to this socket: drop the old one now (its queued output too).
            old.close()
            self.connection_lost(old)
        if req.passwd != session_password(sid):
            self._refuse_session(conn)
            return
        self._bind(conn, sid)
        if self.revalidate is None:
            self._reconnected(conn, sid, self.tracker.touch(sid, now_ms, timeout))
            return
        # Ask the leader (it owns sessions); the answer comes back through `revalidated`.
        self._enqueue(sid, Entry(REVALIDATE, conn, 0, 0, b"", now_ms))
        self.revalidate(sid, timeout)

    def _connect_read_only(self, conn: Conn, req, timeout: int, now_ms: int) -> None:
        """Only clients that asked for read-only get in, with a session local to this server
        (nothing can be replicated now); a session we do not know is expired here."""
        if not req.read_only:
            self._close(conn)  # it wants writes: it must find a server with a quorum
            return
        if req.session_id == 0:
            sid = self.tracker.new_id()
            self.tracker.add(sid, timeout, now_ms)
        elif req.passwd == session_password(req.session_id) and self.tracker.touch(req.session_id, now_ms, timeout):
            sid = req.session_id
        else:
            self._refuse_session(conn)
            return
        old = self.session_conn.get(sid)
        if old is not None and old is not conn:
            old.close()
            self.connection_lost(old)
        self._bind(conn, sid)
        self._send(conn, replies.connect_response(timeout, sid, session_password(sid), True))

    def enter_read_only(self) -> None:
        """Out of the quorum for a while: serve read-only clients from what we have."""
        self.stop_serving()
        self.read_only = True
        self.serving = True
        self.tracker.sessions.clear()
        self.tracker.buckets.clear()

    def revalidated(self, sid: int, valid: bool) -> None:
        """The leader's word on a reconnecting session: alive (and now ours) or gone. The
        connect response keeps the place the handshake took in the session's order."""
        q = self.queues.get(sid)
        at = next((i for i, e in enumerate(q) if e.kind == REVALIDATE), None) if q else None
        if at is None:
            return
        entry = q[at]
        conn = entry.conn
        if valid:
            if sid not in self.tracker.sessions:
                self.tracker.add(sid, conn.timeout, self.now_ms)
            self.tracker.touch(sid, self.now_ms, conn.timeout)
            reply = replies.connect_response(conn.timeout, sid, session_password(sid), None if conn.old_client else False)
            q[at] = Entry(READY, conn, 0, 0, reply, entry.start_ms)
        else:
            del q[at]
            self._reconnected(conn, sid, False)
        self._drain(sid, q)

    def _reconnected(self, conn: Conn, sid: int, valid: bool) -> None:
        if valid:
            ro = None if conn.old_client else False
            self._send(conn, replies.connect_response(conn.timeout, sid, session_password(sid), ro))
        else:
            if self.session_conn.get(sid) is conn:
                del self.session_conn[sid]
            self._refuse_session(conn)

    def _refuse_session(self, conn: Conn) -> None:
        """Expired, unknown, or a wrong password: timeout 0, then close."""
        conn.session_id = 0
        self._send(conn, replies.connect_response(0, 0, bytes(16), None if conn.old_client else False))
        self._close(conn)

    def _bind(self, conn: Conn, sid: int) -> None:
        conn.session_id = sid
        self.session_conn[sid] = conn

    def _auth(self, conn: Conn, payload: bytes) -> None:
        """Auth takes effect at once (later requests carry the new ids); its reply keeps its
        place in the session's order, since kazoo matches it to the head of its queue."""
        try:
            packet = decode_request(OpCode.AUTH, payload, 8)
            conn.add_ids(aclmod.authenticate(packet.scheme, packet.auth, self.config.super_digest))
        except ZkError:
            self.stats.auth_failed += 1
            self._send(conn, replies.header_only(AUTH_XID, 0, Err.AUTHFAILED))
            self._close(conn)
            return
        self._enqueue(conn.session_id, Entry(READY, conn, AUTH_XID, OpCode.AUTH, replies.header_only(AUTH_XID, 0), 0))

    # --- per-session order -----------------------------------------------------------------

    def _enqueue(self, sid: int, entry: Entry) -> None:
        q = self.queues.get(sid)
        if q is None:
            if entry.kind == READ:
                self._serve(entry)
                return
            if entry.kind == READY:
                self._send(entry.conn, entry.payload)
                return
            q = self.queues[sid] = deque()
        elif entry.kind == READ:
            entry = entry._replace(ids=tuple(entry.conn.ids))
        q.append(entry)

    def _drain(self, sid: int, q: deque[Entry]) -> None:
        """Answer queued reads until the next write the session still waits for."""
        while q and q[0].kind in (READ, READY):
            entry = q.popleft()
            if entry.kind == READ:
                self._serve(entry)
            else:
                self._send(entry.conn, entry.payload)
        if not q:
            del self.queues[sid]

    def _fast_get_data(self, conn: Conn, xid: int, payload: bytes) -> bool:
        """The hottest request, answered without the general decode and dispatch: a readable
        existing node. Anything else (bad bytes, no node, an ACL) takes the general path."""
        try:
            (n,) = INT.unpack_from(payload, 8)
            if n < 0 or len(payload) < 13 + n:
                return False
            path = payload[12 : 12 + n].decode()
            watch = payload[12 + n]
        except UnicodeDecodeError:
            return False
        node = self.tree.nodes.get(path)
        if node is None or (node.acl is not OPEN_ACL_UNSAFE and not aclmod.allows(node.acl, Perm.READ, conn.ids)):
            return False
        if watch:
            self.watches.data.add(path, conn)
        body = node.encoded()
        self._send(conn, FRAME_HEADER.pack(HEADER_SIZE + len(body), xid, self.tree.last_zxid, 0) + body)
        return True

    def _serve(self, entry: Entry) -> None:
        conn = entry.conn
        if conn.closed:
            return
        ctx = ReadContext(self.tree, self.watches, conn, entry.ids if entry.ids is not None else conn.ids)
        zxid = self.tree.last_zxid
        self._send(conn, serve_read(ctx, entry.xid, entry.opcode, entry.payload, zxid, self.config.max_buffer))
        self.stats.record_latency(0)

    # --- writes ----------------------------------------------------------------------------

    def _prep_locally(self, req: Request, wall_ms: int) -> None:
        """Standalone: prep here and hand the txn to the log."""
        self.to_log.append(self.preparer.prep(req, self.now_ms, wall_ms))
        if len(self.to_log) == 1:
            self.on_log()

    def sync_done(self, sid: int, xid: int) -> None:
        """The leader has answered this session's sync: everything before it is applied here."""
        q = self.queues.get(sid)
        if q and q[0].kind == SYNC and q[0].xid == xid:
            entry = q.popleft()
            self._serve(entry)
            self._drain(sid, q)

    def committed(self, hdr: TxnHeader, txn: Txn, origin: tuple[int, int] | None = None) -> None:
        """A txn is durable (standalone) or committed by a quorum: apply it, and answer it if
        it is one of our requests (`origin` names the server and request it came from)."""
        triggers: list[Trigger] = []
        result = self.tree.apply(hdr, txn, triggers)
        self.preparer.applied(hdr.zxid)
        if triggers:
            self._fire(triggers)
        sid = hdr.session_id
        op = hdr.type
        if op == OpCode.CLOSE_SESSION:
            self.tracker.remove(sid)
        elif op == OpCode.CREATE_SESSION and isinstance(txn, CreateSessionTxn):
            if sid not in self.tracker.sessions:  # created through another server
                self.tracker.add(sid, txn.timeout, self.now_ms)
        elif op == OpCode.DELETE_CONTAINER:
            self.containers_in_flight.discard(getattr(txn, "path", ""))
        q = self.queues.get(sid)
        if q and q[0].kind in (WRITE, CONNECT) and self._is_ours(q[0], hdr, origin):
            entry = q.popleft()
            self._answer(entry, hdr, result)
            self._drain(sid, q)
        if op == OpCode.CLOSE_SESSION:
            conn = self.session_conn.pop(sid, None)
            if conn is not None:
                self._close(conn)
            self.queues.pop(sid, None)

    def _is_ours(self, head: Entry, hdr: TxnHeader, origin: tuple[int, int] | None) -> bool:
        if origin is not None:
            return origin == (self.config.server_id, head.seq)
        return self.answer_unlabelled and head.xid == hdr.cxid and head.opcode == hdr.type

    def _answer(self, entry: Entry, hdr: TxnHeader, result) -> None:
        conn = entry.conn
        self.stats.record_latency(self.now_ms - entry.start_ms)
        if entry.kind == CONNECT:
            # Always answered, even if a pipelined closeSession already marks it closing.
            sid = hdr.session_id
            ro = None if conn.old_client else False
            self._send(conn, replies.connect_response(conn.timeout, sid, session_password(sid), ro))
            return
        conn.last_zxid = hdr.zxid
        self._send(conn, write_reply(entry.xid, self.tree.last_zxid, entry.opcode, result))

    def _fire(self, triggers: list[Trigger]) -> None:
        for event, path, node_acl in triggers:
            watchers = self.watches.fire(path, event)
            if not watchers:
                continue
            frame = replies.notification(event, path)
            for conn in watchers:
                if not conn.closed and aclmod.allows(node_acl, Perm.READ, conn.ids):
                    self._send(conn, frame)

    # --- time ------------------------------------------------------------------------------

    def tick(self, now_ms: int, wall_ms: int) -> None:
        """Expire sessions; every check interval, remove empty containers and expired TTLs."""
        self.now_ms = now_ms
        if self.read_only:
            for sid in self.tracker.expired(now_ms):  # local sessions: nothing to replicate
                self.tracker.remove(sid)
                conn = self.session_conn.pop(sid, None)
                if conn is not None:
                    self._close(conn)
            return
        if not self.owns_sessions:
            return  # the leader expires sessions and sweeps containers for the ensemble
        for sid in self.tracker.expired(now_ms):
            self.submit(close_session_request(sid), wall_ms)
        if now_ms >= self.next_container_check:
            self.next_container_check = now_ms + self.config.container_check_interval_ms
            # Deletes from the previous sweep have long been applied (or failed: their error
            # txn names no path); forget them, so a failed one is simply tried again.
            self.containers_in_flight.clear()
            for path in self.container_candidates(wall_ms):
                self.containers_in_flight.add(path)
                self.submit(delete_container_request(path), wall_ms)

    def container_candidates(self, wall_ms: int) -> list[str]:
        nodes = self.tree.nodes
        out = []
        for path in sorted(self.tree.containers):
            node = nodes.get(path)
            if node is not None and not node.children and node.cversion > 0:
                out.append(path)
        for path in sorted(self.tree.ttls):
            node = nodes.get(path)
            if node is not None and not node.children and wall_ms - node.mtime > ttl_of(node.owner):
                out.append(path)
        limit = self.config.container_max_per_minute
        return [p for p in out if p not in self.containers_in_flight][:limit]

    def outstanding(self) -> int:
        return sum(len(q) for q in self.queues.values())

    # --- role changes (ensemble) ---------------------------------------------------------------

    def stop_serving(self) -> None:
        """Leave the broadcast phase: drop every client (they reconnect elsewhere) and forget
        what was in flight; a new leader decides what of it happened."""
        self.serving = False
        self.read_only = False
        for conn in list(self.conns):
            conn.close()
            self.connection_lost(conn)
        self.queues.clear()
        self.to_log.clear()
        self.containers_in_flight.clear()
        self.preparer.pending.clear()

    def reset(self, tree: DataTree, next_zxid_base: int, now_ms: int) -> None:
        """Take a new tree (after a sync) and restart prep at `next_zxid_base` + 1."""
        self.tree = tree
        self.preparer = Preparer(tree, self.tracker, self.config.extended_types, self.config.max_buffer)
        self.preparer.zxid = next_zxid_base
        # Every replicated session starts a fresh timeout, as when ZooKeeper loads a database.
        self.tracker.sessions.clear()
        self.tracker.buckets.clear()
        for sid, timeout in tree.sessions.items():
            self.tracker.add(sid, timeout, now_ms)
