"""The asyncio shell of a standalone server: sockets, clock, disk and timers around ServerCore.

Group commit: writes prepared while a log batch is being fsynced wait in the core; when the
fsync returns, the whole batch is applied and answered, and everything that piled up meanwhile
goes out as the next batch with one fsync.
"""

from __future__ import annotations

import asyncio
import logging
import random
import signal
import time
from concurrent.futures import ThreadPoolExecutor

from .config import ServerConfig
from .connection import Conn
from .core import ServerCore
from .fourletter import WORDS, FourLetterWords
from .protocol.jute import INT
from .storage.store import Storage
from .storage.groupcommit import GroupCommitLog
from .storage.snapshot import encode_nodes

log = logging.getLogger("zkserver")

TICK_SECONDS = 0.05
SNAPSHOT_CHUNK = 2000  # nodes serialised per event-loop turn


def monotonic_ms() -> int:
    return time.monotonic_ns() // 1_000_000


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class ClientProtocol(asyncio.Protocol):
    """Frames bytes from one socket into the core; answers four-letter words."""

    def __init__(self, server: "StandaloneServer") -> None:
        self.server = server
        self.core = server.core
        self.buf = bytearray()
        self.conn: Conn | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.transport = transport
        peer = transport.get_extra_info("peername") or ("?", 0)
        self.conn = Conn(str(peer[0]), int(peer[1]), transport.write, transport.close)
        if not self.core.connection_made(self.conn):
            log.warning("too many connections from %s (maxClientCnxns); refusing", peer[0])
            self.conn.closed = True  # never counted, so nothing to release
            transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.conn is not None:
            self.core.connection_lost(self.conn)
            self.core.flush()

    def pause_writing(self) -> None:
        # A client that does not read its replies must not make us buffer without bound.
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        if conn is None or conn.closed:
            return
        buf = self.buf
        if buf:
            buf += data
            data = bytes(buf)  # one copy; frames are then sliced straight out of it
            buf.clear()
        if conn.session_id is None and conn.received == 0 and len(data) >= 4 and data[:4] in WORDS:
            self._four_letter(data[:4].decode())
            return
        limit = self.core.config.max_buffer
        now, wall = monotonic_ms(), wall_ms()
        pos, end = 0, len(data)
        core = self.core
        unpack = INT.unpack_from
        while end - pos >= 4:
            (n,) = unpack(data, pos)
            if n < 0 or n > limit:
                log.info("%s sent a frame of %d bytes (limit %d); closing it", conn, n, limit)
                core.connection_lost(conn)
                self.transport.close()
                core.flush()
                return
            if end - pos - 4 < n:
                break
            core.receive(conn, data[pos + 4 : pos + 4 + n], now, wall)
            pos += 4 + n
        if pos < end:
            buf += data[pos:]
        core.flush()

    def _four_letter(self, word: str) -> None:
        try:
            text = self.server.four_letter.answer(word)
        except Exception:  # a status page must never take the server down
            log.exception("four-letter word %s failed", word)
            text = "error\n"
        self.core.connection_lost(self.conn)
        self.transport.write(text.encode())
        self.transport.close()


class StandaloneServer:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.storage = Storage(config)
        self.core: ServerCore | None = None
        self.pool = ThreadPoolExecutor(2, thread_name_prefix="zk-io")
        self.snapshots = SnapshotPolicy(config, self.storage, self.pool)
        self.listener: asyncio.base_events.Server | None = None
        self.stopped = asyncio.Event()
        self.failure: BaseException | None = None
        self._tick_handle: asyncio.TimerHandle | None = None

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        tree = self.storage.restore()
        self.core = ServerCore(self.config, tree, monotonic_ms(), wall_ms())
        # Standalone, the server is CPU-bound under load: a worker thread overlaps the fsync with
        # request processing (measured: ~15% more writes than fsyncing on the loop).
        self.log = GroupCommitLog(self.loop, self.storage, self.pool, self._durable, self._failed, inline=False)
        self.core.on_log = lambda: self.log.append(self.core.take_log())
        self.four_letter = FourLetterWords(self.core)
        self.listener = await listen_for_clients(self, self.config)
        self._tick_handle = self.loop.call_later(TICK_SECONDS, self._tick)
        log.info(
            "serving on %s:%d (zxid 0x%x, %d nodes, %d sessions)",
            self.config.client_port_address,
            self.port,
            tree.last_zxid,
            len(tree.nodes),
            len(tree.sessions),
        )

    @property
    def port(self) -> int:
        assert self.listener is not None
        return self.listener.sockets[0].getsockname()[1]

    def _tick(self) -> None:
        self.core.tick(monotonic_ms(), wall_ms())
        self.core.flush()
        self._tick_handle = self.loop.call_later(TICK_SECONDS, self._tick)

    def _durable(self, batch: list) -> None:
        core = self.core
        for hdr, txn in batch:
            core.committed(hdr, txn)
        core.flush()
        self.snapshots.after_batch(self.loop, core.tree, len(batch), self.log.last_appended + 1)

    def _failed(self, exc: BaseException) -> None:
        # We cannot promise durability any more: stop rather than answer writes.
        self.failure = exc
        self.stopped.set()

    async def stop(self) -> None:
        if self.listener is not None:
            self.listener.close()
        if self._tick_handle is not None:
            self._tick_handle.cancel()
        for _ in range(200):  # let an in-flight batch land (at most ~2 s)
            if self.log.idle():
                break
            await asyncio.sleep(0.01)
        for conn in list(self.core.conns):
            conn.close()
            self.core.connection_lost(conn)
        self.storage.close()
        self.pool.shutdown(wait=True)
        self.stopped.set()


class SnapshotPolicy:
    """Every ~snapCount txns (spread at random, as ZooKeeper does, so replicas do not all
    snapshot at once), write a fuzzy snapshot a chunk per loop turn while writes go on."""

    def __init__(self, config: ServerConfig, storage: Storage, pool: ThreadPoolExecutor) -> None:
        self.config = config
        self.storage = storage
        self.pool = pool
        self.since = 0
        self.threshold = self._next_threshold()
        self.running = False

    def _next_threshold(self) -> int:
        half = self.config.snap_count // 2
        return half + random.randint(0, max(half, 1))

    def after_batch(self, loop: asyncio.AbstractEventLoop, tree, count: int, next_log_zxid: int) -> None:
        """Call when no log write is in flight (the log may roll here)."""
        self.since += count
        if self.since < self.threshold or self.running:
            return
        self.since = 0
        self.threshold = self._next_threshold()
        self.running = True
        writer = self.storage.begin_snapshot(tree, next_log_zxid)
        loop.create_task(self._write(loop, tree, writer))

    async def _write(self, loop: asyncio.AbstractEventLoop, tree, writer) -> None:
        nodes = tree.nodes
        paths = list(nodes)
        try:
            for i in range(0, len(paths), SNAPSHOT_CHUNK):
                chunk = [(p, nodes[p]) for p in paths[i : i + SNAPSHOT_CHUNK] if p in nodes]
                writer.write(encode_nodes(chunk))
                await asyncio.sleep(0)
            final = await loop.run_in_executor(self.pool, self.storage.finish_snapshot, writer)
            if final is None:
                log.info("snapshot dropped: the state on disk was replaced while it was written")
                return
            log.info("snapshot %s written (%d nodes)", final.name, len(paths))
            if self.config.purge_interval_hours > 0:
                await loop.run_in_executor(self.pool, self.storage.purge)
        except Exception:
            log.exception("snapshot failed; the log still holds every txn")
            writer.abort()
        finally:
            self.running = False


async def listen_for_clients(server, config: ServerConfig) -> asyncio.base_events.Server:
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: ClientProtocol(server),
        config.client_port_address,
        config.client_port,
        reuse_address=True,
        backlog=1024,
    )


async def serve(config: ServerConfig) -> int:
    if config.peers:
        from .quorum.shell import EnsembleServer

        server = EnsembleServer(config)
    else:
        server = StandaloneServer(config)
    await server.start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    waiter = asyncio.ensure_future(stop.wait())
    failed = asyncio.ensure_future(server.stopped.wait())
    await asyncio.wait({waiter, failed}, return_when=asyncio.FIRST_COMPLETED)
    await server.stop()
    return 1 if server.failure else 0


def run(config: ServerConfig) -> int:
    """Run until SIGTERM/SIGINT; uvloop when it is installed."""
    try:
        import uvloop

        return uvloop.run(serve(config))
    except ImportError:
        return asyncio.run(serve(config))
