"""Standalone throughput and latency: zkchaos against Apache ZooKeeper, measured in one run.

Each server is started on loopback with the same settings (tickTime, forceSync=yes, snapCount,
data on the same filesystem), loaded with benchmarks/loadgen.py, and stopped before the next
one starts, so the two never compete for this machine's cores. The load generator runs on the
same machine as the server, so the figures are for "server + client on 2 cores".

    python benchmarks/standalone.py --duration 5 --ops getData,setData,create --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # harness, zkserver, benchmarks

from benchmarks.loadgen import LoadConfig, LoadResult, OpResult, add_load_args, config_from_args, run_load  # noqa: E402
from harness.localproc import LocalServer, apache_zookeeper_available, free_port  # noqa: E402

KINDS = ("zkchaos", "zookeeper")
LABEL = {"zkchaos": "zkchaos", "zookeeper": "ZooKeeper"}
CLK_TCK = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a process, all its threads included (/proc/PID/stat fields 14, 15)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_busy_seconds() -> float:
    """CPU seconds all processes together have used since boot: user + nice + system from
    /proc/stat (irq, softirq and steal left out, since no process is charged for them)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:4]]
    return sum(v) / CLK_TCK


def server_settings(tick_time: int) -> dict[str, str]:
    # forceSync=yes is ZooKeeper's default (unknown zoo.cfg keys become zookeeper.* system
    # properties, so it reaches ZooKeeper too) and zkchaos's; spelled out so both visibly fsync.
    return {"tickTime": str(tick_time), "forceSync": "yes", "snapCount": "100000"}


def bench_one(
    kind: str, workdir: Path, cfg: LoadConfig, tick_time: int, server_warmup: float
) -> tuple[LoadResult, dict[str, float]]:
    """Start one server, load it, stop it. Also returns, per op, the cores that processes
    other than this server and the load generator used meanwhile: other agents' work on a
    shared machine, which is what makes a figure noisy."""
    server = LocalServer(kind, workdir / kind, free_port(), server_settings(tick_time))
    try:
        server.start(timeout=60)
        time.sleep(0.5)
        if not server.running():
            # wait_ready only asks the port; if another process held it, ours died on bind.
            raise RuntimeError(f"{kind} exited right after start-up:\n{server.tail_log()}")
        pid = server.proc.pid
        print(f"[{LABEL[kind]}] pid {pid} on {server.address}; load for {', '.join(cfg.ops)}", flush=True)
        if server_warmup > 0:
            # The JVM needs a few seconds of load before its JIT has compiled the hot paths; a
            # fresh ZooKeeper serves getData at a fraction of its speed in its first seconds.
            # Both servers get the same unmeasured pass so they also start from the same tree.
            pre = replace(cfg, warmup=0.0, duration=server_warmup)
            run_load([server.address], pre)
        machine: list[float] = []

        def probe() -> float:
            machine.append(machine_busy_seconds())  # sampled at the same instants as the server
            return process_cpu_seconds(pid)

        res = run_load([server.address], cfg, cpu_probe=probe, setup=False)
        other = {}
        for i, r in enumerate(res.results):
            busy = (machine[2 * i + 1] - machine[2 * i]) / cfg.duration
            other[r.op] = max(0.0, busy - (r.server_cpu or 0.0) - r.client_cpu)
        return res, other
    finally:
        server.stop()  # by pid: terminate, then kill after a timeout
        if server.proc is not None and server.proc.returncode not in (0, None, -15, 143):
            print(f"[{LABEL[kind]}] exited with {server.proc.returncode}; log tail:\n{server.tail_log()}")


def _fmt_lat(r: OpResult | None) -> str:
    return "-" if r is None else f"{r.p50_ms:.2f}/{r.p99_ms:.2f}"


# kind -> op -> (result, cores used by other processes meanwhile)
Table = dict[str, dict[str, tuple[OpResult, float]]]


def as_table(results: dict[str, LoadResult], other: dict[str, dict[str, float]]) -> Table:
    return {k: {r.op: (r, other[k].get(r.op, 0.0)) for r in res.results} for k, res in results.items()}


def best_of(tables: list[Table]) -> Table:
    """Per server and op, the round with the highest throughput: on a shared machine the
    fastest round is the one least disturbed by others, so it is the fairest to compare."""
    best: Table = {}
    for t in tables:
        for kind, ops in t.items():
            for op, entry in ops.items():
                cur = best.setdefault(kind, {}).get(op)
                if cur is None or entry[0].ops_per_s > cur[0].ops_per_s:
                    best[kind][op] = entry
    return best


def print_table(title: str, table: Table, cfg: LoadConfig) -> None:
    zc, zk = table.get("zkchaos", {}), table.get("zookeeper", {})
    header = (
        f"{'op':8} {'zkchaos ops/s':>13} {'ZooKeeper ops/s':>15} {'ratio':>6}  {'zkchaos p50/p99 ms':>18} "
        f"{'ZooKeeper p50/p99 ms':>20}  {'srv CPU zc/zk':>13}  {'errors zc/zk':>12}  {'other zc/zk':>11}"
    )
    print(f"\n{title}")
    print(header)
    print("-" * len(header))
    for op in cfg.ops:
        a, b = zc.get(op, (None, 0.0))[0], zk.get(op, (None, 0.0))[0]
        ratio = f"{a.ops_per_s / b.ops_per_s:.2f}" if a and b and b.ops_per_s else "-"
        cpu = "/".join("-" if r is None or r.server_cpu is None else f"{r.server_cpu:.2f}" for r in (a, b))
        errs = "/".join("-" if r is None else str(r.errors + r.protocol_errors) for r in (a, b))
        oth = "/".join(f"{t[op][1]:.2f}" if op in t else "-" for t in (zc, zk))
        print(
            f"{op:8} {a.ops_per_s if a else 0:13.0f} {b.ops_per_s if b else 0:15.0f} {ratio:>6}  "
            f"{_fmt_lat(a):>18} {_fmt_lat(b):>20}  {cpu:>13}  {errs:>12}  {oth:>11}"
        )
    for kind, ops in table.items():
        for r, _ in ops.values():
            if r.errors or r.protocol_errors:
                print(f"  {LABEL[kind]} {r.op}: error codes {r.error_codes}, protocol errors {r.protocol_errors}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_load_args(ap)
    ap.add_argument("--servers", default=",".join(KINDS), help="which to run: zkchaos,zookeeper")
    ap.add_argument("--tick-time", type=int, default=2000)
    ap.add_argument(
        "--server-warmup", type=float, default=3.0, help="unmeasured seconds of each op after a server starts"
    )
    ap.add_argument("--repeat", type=int, default=1, help="rounds (servers alternate); also prints best of all rounds")
    ap.add_argument("--workdir", help="server directories go here (default: a temporary directory, removed)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    cfg = config_from_args(args)
    kinds = [k.strip() for k in args.servers.split(",") if k.strip()]
    if any(k not in KINDS for k in kinds):
        raise SystemExit(f"--servers: choose from {', '.join(KINDS)}")
    if "zookeeper" in kinds and not apache_zookeeper_available():
        raise SystemExit("Apache ZooKeeper (Debian package zookeeper) or java is missing")
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="zkbench-"))
    rounds: list[dict] = []
    started = time.time()
    try:
        for n in range(args.repeat):
            results: dict[str, LoadResult] = {}
            other: dict[str, dict[str, float]] = {}
            for kind in kinds:
                results[kind], other[kind] = bench_one(
                    kind, workdir / f"round{n + 1}", cfg, args.tick_time, args.server_warmup
                )
            rounds.append({"results": results, "other": other})
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    print(
        f"\n{cfg.processes} processes x {cfg.connections} sessions x window {cfg.window}; "
        f"{cfg.warmup:g} s warm-up + {cfg.duration:g} s per op; {cfg.nodes} nodes of {cfg.value_size} bytes"
    )
    tables = [as_table(r["results"], r["other"]) for r in rounds]
    for n, t in enumerate(tables):
        print_table(f"round {n + 1} of {len(tables)}", t, cfg)
    if len(tables) > 1:
        print_table(f"best of {len(tables)} rounds (per server and op)", best_of(tables), cfg)
    print("\nsrv CPU = cores the server process used during the measured interval (of 2);")
    print("other = cores used meanwhile by processes other than the server and the load generator")
    print("(other agents on this shared machine): where it is high, that figure is depressed.")
    if args.json:
        doc = {
            "started": started,
            "load_average": os.getloadavg(),
            "tick_time": args.tick_time,
            "server_warmup": args.server_warmup,
            "rounds": [
                {"results": {k: r.to_dict() for k, r in rd["results"].items()}, "other_cpu": rd["other"]}
                for rd in rounds
            ],
        }
        Path(args.json).write_text(json.dumps(doc, indent=2))
        print(f"results written to {args.json}")


if __name__ == "__main__":
    main()
