"""Raw-protocol ZooKeeper load generator: worker processes, each with pipelined connections.

Why not kazoo: it tops out near 8k ops/s per process, below what one server can serve, so it
would measure the client. Here each worker process drives several plain TCP sessions from one
epoll loop, keeps `window` requests outstanding per connection with increasing xids, and tops
the window up with many frames per send. Replies are checked (xid order, err == 0) and timed
from the send of their batch to the recv that carried them.

The parent decides when every phase starts, so all workers measure the same interval and the
caller can sample server CPU over exactly that interval. `run_load` is the reusable entry:
give it server addresses (connections are spread over them) and get a LoadResult back.

    python benchmarks/loadgen.py 127.0.0.1:2181 --ops getData,setData --duration 5
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import selectors
import sys
import time
import traceback
from array import array
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # zkserver, when run as a script

from benchmarks.zkwire import (  # noqa: E402
    PERSISTENT_SEQUENTIAL,
    REPLY_HEADER,
    REQ_HEADER,
    SyncClient,
    close_session,
    create_body,
    create_tree,
    get_data_body,
    open_session,
    set_data_body,
    sync_body,
    wait_closed,
)
from zkserver.protocol.constants import Err, OpCode  # noqa: E402

OPS = {"getData": OpCode.GET_DATA, "setData": OpCode.SET_DATA, "create": OpCode.CREATE}
DRAIN_TIMEOUT_S = 15.0


@dataclass
class LoadConfig:
    processes: int = 2
    connections: int = 4  # per process
    window: int = 64  # outstanding requests per connection
    batch: int = 0  # top the window up once this many slots are free; 0 = window // 4
    warmup: float = 1.0
    duration: float = 5.0
    nodes: int = 1000
    value_size: int = 100
    root: str = "/zkbench"
    ops: tuple[str, ...] = ("getData", "setData", "create")

    def refill_at(self) -> int:
        return self.batch or max(1, self.window // 4)


@dataclass
class OpResult:
    op: str
    ops_per_s: float
    p50_ms: float
    p99_ms: float
    count: int  # successful replies received inside the measured interval
    errors: int  # replies with err != 0 (whole phase, warm-up included)
    error_codes: dict[int, int]
    protocol_errors: int  # xid out of order, wrong reply length, connection lost, missing after the drain
    client_cpu: float  # cores used by all load-generator processes during the interval
    server_cpu: float | None  # cores used by the server(s), when the caller gave a probe


@dataclass
class LoadResult:
    servers: list[str]
    config: LoadConfig
    results: list[OpResult] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def node_paths(cfg: LoadConfig) -> list[str]:
    return [f"{cfg.root}/data/n{i:05d}" for i in range(cfg.nodes)]


def value(cfg: LoadConfig) -> bytes:
    return (b"zkbench-" * (cfg.value_size // 8 + 1))[: cfg.value_size]


def prepare(servers: list[str], cfg: LoadConfig, timeout: float = 30.0) -> None:
    """Create the tree through the first server, then wait until every server can read it
    (in an ensemble a follower may still be applying the creates)."""
    c = SyncClient(servers[0])
    try:
        create_tree(c, [cfg.root, f"{cfg.root}/data", f"{cfg.root}/create"], b"")
        create_tree(c, node_paths(cfg), value(cfg))
    finally:
        c.close()
    last = node_paths(cfg)[-1]
    for addr in servers:
        deadline = time.monotonic() + timeout
        c = SyncClient(addr)
        try:
            while True:
                c.call(OpCode.SYNC, sync_body(cfg.root))
                if c.call(OpCode.GET_DATA, get_data_body(last))[0] == Err.OK:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{addr}: {last} not visible after {timeout}s")
                time.sleep(0.1)
        finally:
            c.close()


def _bodies(op: str, cfg: LoadConfig) -> list[bytes]:
    if op == "getData":
        return [get_data_body(p) for p in node_paths(cfg)]
    if op == "setData":
        return [set_data_body(p, value(cfg)) for p in node_paths(cfg)]
    if op == "create":  # sequential: one constant body, the server makes each name unique
        return [create_body(f"{cfg.root}/create/n-", value(cfg), PERSISTENT_SEQUENTIAL)]
    raise ValueError(f"unknown op {op!r}; known: {', '.join(OPS)}")


STAT_SIZE = 68  # czxid mzxid ctime mtime version cversion aversion ephemeralOwner dataLength numChildren pzxid


def _reply_length(op: str, cfg: LoadConfig) -> int:
    """Frame length of a successful reply (header 16 bytes + body): fixed for each op here, so
    checking it catches truncated or mixed-up replies at no cost."""
    if op == "getData":
        return 16 + 4 + cfg.value_size + STAT_SIZE
    if op == "setData":
        return 16 + STAT_SIZE
    return 16 + 4 + len(f"{cfg.root}/create/n-") + 10  # the name with its 10-digit sequence


class _Conn:
    __slots__ = ("sock", "buf", "next_xid", "expect", "sent_at", "idx", "dead")

    def __init__(self, sock, idx: int) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.next_xid = 1
        self.expect = 1
        self.sent_at: deque[int] = deque()
        self.idx = idx  # where this connection is in the body list; spread so keys differ
        self.dead = False


def _send(c: _Conn, k: int, bodies: list[bytes], opcode: int) -> None:
    parts = []
    xid, i, n = c.next_xid, c.idx, len(bodies)
    pack = REQ_HEADER.pack
    for _ in range(k):
        body = bodies[i]
        parts.append(pack(8 + len(body), xid, opcode))
        parts.append(body)
        xid += 1
        i += 1
        if i == n:
            i = 0
    c.next_xid, c.idx = xid, i
    c.sent_at.extend(repeat(time.monotonic_ns(), k))
    c.sock.sendall(b"".join(parts))


def _run_phase(conns: list[_Conn], op: str, start_at: int, cfg: LoadConfig) -> dict:
    opcode, bodies, ok_length = OPS[op], _bodies(op, cfg), _reply_length(op, cfg)
    warm_end = start_at + int(cfg.warmup * 1e9)
    end = warm_end + int(cfg.duration * 1e9)
    window, refill = cfg.window, cfg.refill_at()
    lat = array("q")
    count = errors = proto = 0
    codes: Counter[int] = Counter()
    cpu0 = cpu1 = None
    time.sleep(max(0.0, (start_at - time.monotonic_ns()) / 1e9))
    sel = selectors.DefaultSelector()
    for c in conns:
        c.idx %= len(bodies)
        if not c.dead:
            try:
                _send(c, window, bodies, opcode)
            except OSError:  # lost since the last phase
                c.dead, c.sent_at = True, deque()
                proto += 1
                continue
            sel.register(c.sock, selectors.EVENT_READ, c)
    unpack = REPLY_HEADER.unpack_from
    sending = True
    drain_deadline = None
    while True:
        now = time.monotonic_ns()
        if sending and now >= end:
            sending, cpu1 = False, time.process_time()
            drain_deadline = now + int(DRAIN_TIMEOUT_S * 1e9)
        if cpu0 is None and now >= warm_end:
            cpu0 = time.process_time()
        if not sending and (now >= drain_deadline or all(c.dead or not c.sent_at for c in conns)):
            break
        events = sel.select(0.05)
        now = time.monotonic_ns()
        measuring = warm_end <= now < end
        for key, _ in events:
            c = key.data
            try:
                data = c.sock.recv(1 << 18)
            except OSError:  # reset by the server
                data = b""
            if not data:  # the server closed the session: count it once, stop using it
                proto += 1
                c.dead = True
                sel.unregister(c.sock)
                continue
            buf = c.buf
            buf += data
            pos, n, sent_at, expect = 0, len(buf), c.sent_at, c.expect
            while n - pos >= 20:
                length, xid, _zxid, err = unpack(buf, pos)
                if n - pos - 4 < length:
                    break
                pos += 4 + length
                if length < 16:  # shorter than a ReplyHeader: the stream is garbage
                    proto += 1
                    continue
                if xid < 0:  # notification or ping reply: not a reply to one of ours
                    continue
                if not sent_at:  # a reply nobody is waiting for (late from a timed-out drain)
                    proto += 1
                    continue
                t = sent_at.popleft()
                if xid != expect:
                    proto += 1
                    expect = xid  # resynchronise so one slip is not counted over and over
                expect += 1
                if err:
                    errors += 1
                    codes[err] += 1
                elif length != ok_length:  # a reply of the wrong shape is not a success
                    proto += 1
                elif measuring:
                    count += 1
                    lat.append(now - t)
            c.expect = expect
            if pos:
                del buf[:pos]
            free = window - len(sent_at)
            if sending and free >= refill:
                try:
                    _send(c, free, bodies, opcode)
                except OSError:  # reset between our recv and this send; the recv will see EOF
                    pass
    sel.close()
    missing = sum(len(c.sent_at) for c in conns if not c.dead)
    for c in conns:
        c.sent_at.clear()
        c.expect = c.next_xid
    return {
        "count": count,
        "errors": errors,
        "codes": dict(codes),
        "proto": proto + missing,
        "lat": lat,
        "cpu": (cpu1 or time.process_time()) - (cpu0 or 0.0),
    }


def _worker(servers: list[str], index: int, cfg: LoadConfig, pipe) -> None:
    """One load-generator process: open its sessions, then run phases on command."""
    conns: list[_Conn] = []
    try:
        total = cfg.processes * cfg.connections
        for i in range(cfg.connections):
            k = index * cfg.connections + i
            sock, _ = open_session(servers[k % len(servers)])
            conns.append(_Conn(sock, k * cfg.nodes // total))
        pipe.send(("ready", None))
        while True:
            cmd = pipe.recv()
            if cmd[0] == "stop":
                break
            _, op, start_at = cmd
            pipe.send(("result", _run_phase(conns, op, start_at, cfg)))
    except Exception:
        pipe.send(("error", traceback.format_exc()))
    finally:
        _close_all(conns)


def _close_all(conns: list[_Conn], timeout: float = 2.0) -> None:
    """closeSession on every session, then wait for the server to close each socket."""
    for c in conns:
        if not close_session(c.sock, c.next_xid):
            c.dead = True
    deadline = time.monotonic() + timeout
    for c in conns:
        if c.dead:
            c.sock.close()
        else:
            wait_closed(c.sock, deadline)


def _percentile(sorted_ns: list[int], q: float) -> float:
    if not sorted_ns:
        return float("nan")
    return sorted_ns[min(len(sorted_ns) - 1, int(q * len(sorted_ns)))] / 1e6


def _collect(pipes: list, timeout: float) -> list:
    out = []
    for p in pipes:
        if not p.poll(timeout):
            raise TimeoutError(f"a load-generator process did not answer within {timeout:.0f}s")
        kind, payload = p.recv()
        if kind == "error":
            raise RuntimeError(f"load-generator process failed:\n{payload}")
        out.append(payload)
    return out


def run_load(
    servers: list[str],
    cfg: LoadConfig,
    cpu_probe: Callable[[], float] | None = None,
    setup: bool = True,
) -> LoadResult:
    """Run each op in cfg.ops for warmup + duration against `servers` and aggregate.

    `cpu_probe` returns the server side's cumulative CPU seconds; it is sampled at the start
    and end of each measured interval to report how many cores the server used."""
    if setup:
        prepare(servers, cfg)
    ctx = mp.get_context("spawn")  # no inherited sockets or threads from the caller
    procs, pipes = [], []
    result = LoadResult(list(servers), cfg)
    try:
        for i in range(cfg.processes):
            parent_end, child_end = ctx.Pipe()
            p = ctx.Process(target=_worker, args=(servers, i, cfg, child_end), daemon=True)
            p.start()
            procs.append(p)
            pipes.append(parent_end)
        _collect(pipes, 60.0)
        for op in cfg.ops:
            start_at = time.monotonic_ns() + 200_000_000  # time for every worker to get the command
            for p in pipes:
                p.send(("run", op, start_at))
            server_cpu = None
            if cpu_probe is not None:
                time.sleep(max(0.0, start_at / 1e9 + cfg.warmup - time.monotonic()))
                before = cpu_probe()
                time.sleep(max(0.0, start_at / 1e9 + cfg.warmup + cfg.duration - time.monotonic()))
                server_cpu = (cpu_probe() - before) / cfg.duration
            parts = _collect(pipes, cfg.warmup + cfg.duration + DRAIN_TIMEOUT_S + 30)
            lat = sorted(x for part in parts for x in part["lat"])
            codes: Counter[int] = Counter()
            for part in parts:
                codes.update(part["codes"])
            count = sum(part["count"] for part in parts)
            result.results.append(
                OpResult(
                    op=op,
                    ops_per_s=count / cfg.duration,
                    p50_ms=_percentile(lat, 0.50),
                    p99_ms=_percentile(lat, 0.99),
                    count=count,
                    errors=sum(part["errors"] for part in parts),
                    error_codes=dict(codes),
                    protocol_errors=sum(part["proto"] for part in parts),
                    client_cpu=sum(part["cpu"] for part in parts) / cfg.duration,
                    server_cpu=server_cpu,
                )
            )
        for p in pipes:
            p.send(("stop",))
    finally:
        for p in procs:
            p.join(5)
            if p.is_alive():  # our own child, stopped by its pid
                p.terminate()
                p.join(5)
    return result


def add_load_args(ap: argparse.ArgumentParser) -> None:
    d = LoadConfig()
    ap.add_argument("--duration", type=float, default=d.duration, help="measured seconds per op")
    ap.add_argument("--warmup", type=float, default=d.warmup, help="unmeasured seconds before each op")
    ap.add_argument("--processes", type=int, default=d.processes, help="load-generator processes")
    ap.add_argument("--connections", type=int, default=d.connections, help="sessions per process")
    ap.add_argument("--window", type=int, default=d.window, help="outstanding requests per session")
    ap.add_argument("--batch", type=int, default=d.batch, help="refill when this many slots are free (0: window/4)")
    ap.add_argument("--nodes", type=int, default=d.nodes)
    ap.add_argument("--value-size", type=int, default=d.value_size)
    ap.add_argument("--ops", default=",".join(d.ops), help="comma-separated: " + ",".join(OPS))


def config_from_args(args: argparse.Namespace) -> LoadConfig:
    ops = tuple(dict.fromkeys(o.strip() for o in args.ops.split(",") if o.strip()))  # once each
    unknown = [o for o in ops if o not in OPS]
    if unknown:
        raise SystemExit(f"unknown op(s) {unknown}; known: {', '.join(OPS)}")
    return LoadConfig(
        processes=args.processes,
        connections=args.connections,
        window=args.window,
        batch=args.batch,
        warmup=args.warmup,
        duration=args.duration,
        nodes=args.nodes,
        value_size=args.value_size,
        ops=ops,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("servers", nargs="+", help="host:port of each server")
    add_load_args(ap)
    ap.add_argument("--json", help="also write the result here")
    args = ap.parse_args()
    res = run_load(args.servers, config_from_args(args))
    for r in res.results:
        print(
            f"{r.op:8} {r.ops_per_s:10.0f} ops/s  p50 {r.p50_ms:7.2f} ms  p99 {r.p99_ms:7.2f} ms  "
            f"errors {r.errors} {r.error_codes or ''}  protocol errors {r.protocol_errors}  "
            f"client cpu {r.client_cpu:.2f}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(res.to_dict(), indent=2))


if __name__ == "__main__":
    main()
