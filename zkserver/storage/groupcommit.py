"""Group commit: txns handed in while one batch is being fsynced become the next batch.

Encoding happens on the event loop; write + fsync run in a worker thread, one batch at a time,
so the log stays in order. `on_durable(batch)` runs on the loop once a batch is on disk.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import Executor, Future
from typing import Callable

from ..txn import Txn, TxnHeader
from .store import Storage
from .txnlog import encode_record, record_of

log = logging.getLogger(__name__)

Batch = list[tuple[TxnHeader, Txn]]


class GroupCommitLog:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        storage: Storage,
        pool: Executor,
        on_durable: Callable[[Batch], None],
        on_failure: Callable[[BaseException], None],
        inline: bool = True,
    ) -> None:
        self.inline = inline
        self.loop = loop
        self.storage = storage
        self.pool = pool
        self.on_durable = on_durable
        self.on_failure = on_failure
        self.queued: Batch = []
        self.queued_payloads: list[bytes | None] = []
        self.in_flight: Future | None = None
        self.in_flight_last = 0
        self.scheduled = False
        self.generation = 0  # bumped by quiesce: completions of older batches are ignored
        self.last_appended = 0
        self.batches = 0  # for mntr: how well group commit batches
        self.txns = 0
        self.busy_s = 0.0
        self.started_at = 0.0

    def append(self, batch: Batch, payloads: list[bytes] | None = None) -> None:
        """Queue txns; `payloads` are their encodings when the caller already has them."""
        if not batch:
            return
        self.queued.extend(batch)
        self.queued_payloads.extend(payloads if payloads is not None else [None] * len(batch))
        if not self.scheduled and not self.in_flight:
            # Wait for the end of this loop turn, so everything that arrives with it joins.
            self.scheduled = True
            self.loop.call_soon(self._start)

    def _start(self) -> None:
        self.scheduled = False
        if self.in_flight is not None or not self.queued:
            return
        batch, self.queued = self.queued, []
        payloads, self.queued_payloads = self.queued_payloads, []
        data = b"".join(
            [
                record_of(payload) if payload is not None else encode_record(hdr, txn)
                for (hdr, txn), payload in zip(batch, payloads)
            ]
        )
        self.last_appended = self.in_flight_last = batch[-1][0].zxid
        self.started_at = time.perf_counter()
        if self.inline:
            self._write_inline(batch, data)
            return
        fut = self.in_flight = self.pool.submit(self.storage.log.append, data)
        generation = self.generation
        fut.add_done_callback(lambda f: self.loop.call_soon_threadsafe(self._done, batch, f, generation))

    def _write_inline(self, batch: Batch, data: bytes) -> None:
        """Write and fsync on the loop itself. A worker thread would overlap the fsync with
        other work, but handing the GIL to it and back costs more than the fsync (a few
        hundred microseconds on an SSD), and a busy machine may not schedule it for
        milliseconds; meanwhile requests pile up in the kernel and join the next batch."""
        try:
            self.storage.log.append(data)
        except Exception as e:  # noqa: BLE001 - any failure to write: we can promise nothing
            log.critical("transaction log write failed: %s", e)
            self.on_failure(e)
            return
        self.batches += 1
        self.txns += len(batch)
        self.busy_s += time.perf_counter() - self.started_at
        self.on_durable(batch)
        if self.queued and not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self._start)

    def _done(self, batch: Batch, fut: Future, generation: int) -> None:
        if generation != self.generation:
            return  # quiesce already accounted for it
        self.in_flight = None
        self.batches += 1
        self.txns += len(batch)
        self.busy_s += time.perf_counter() - self.started_at
        exc = fut.exception()
        if exc is not None:
            log.critical("transaction log write failed: %s", exc)
            self.on_failure(exc)
            return
        self.on_durable(batch)
        if self.queued:
            self._start()

    def idle(self) -> bool:
        return self.in_flight is None and not self.queued

    def quiesce(self) -> int | None:
        """Drop what is queued and wait for the batch being written, so the caller may touch
        the log files (truncate, replace) without racing the worker. Returns the last zxid of
        the batch that was in flight if it reached the disk."""
        self.queued = []
        self.queued_payloads = []
        fut, self.in_flight = self.in_flight, None
        self.generation += 1
        if fut is None:
            return None
        try:
            fut.result()
        except Exception as e:  # noqa: BLE001 - reported like any failed write
            self.on_failure(e)
            return None
        return self.in_flight_last
