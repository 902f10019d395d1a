"""3-node ensembles: zkchaos against Apache ZooKeeper for throughput, latency and failover.

Each ensemble runs on loopback with the same zoo.cfg settings (tickTime, initLimit, syncLimit,
forceSync=yes, snapCount) and is stopped before the next one starts, so the two never compete
for this machine's cores. Throughput uses benchmarks/loadgen.py with sessions spread evenly over
the three servers (reads are served locally, writes go through the leader). Failover runs on a
fresh ensemble of each kind: a light create load from benchmarks/failprobe.py runs against every
member, the leader is SIGKILLed, and the figure is the time from the kill until the first
create sent afterwards is acknowledged; the killed server is restarted between rounds.

    python benchmarks/ensemble.py --duration 5 --failover-rounds 3 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # harness, zkserver, benchmarks

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from benchmarks.failprobe import WriteProbe  # noqa: E402
from benchmarks.loadgen import LoadConfig, add_load_args, config_from_args, prepare, run_load  # noqa: E402
from benchmarks.standalone import LABEL, machine_busy_seconds, process_cpu_seconds  # noqa: E402
from benchmarks.zkwire import SyncClient, WireError, create_tree, set_data_body  # noqa: E402
from harness.ensemble import LocalEnsemble  # noqa: E402
from harness.localproc import LocalServer, apache_zookeeper_available  # noqa: E402
from zkserver.protocol.constants import Err, OpCode  # noqa: E402

KINDS = ("zkchaos", "zookeeper")
HEALTH_NODE = "/zkbench-health"
FAIL_ROOT = "/zkbench-failover"
console = Console(width=None if sys.stdout.isatty() else 200)  # wide tables in a log too


def say(msg: str) -> None:
    console.print(msg, markup=False, highlight=False)  # "[zkchaos]" is text here, not a style


def ensemble_settings(args: argparse.Namespace) -> dict[str, str]:
    # forceSync=yes is both servers' default; spelled out so both visibly fsync every commit.
    return {
        "tickTime": str(args.tick_time),
        "initLimit": str(args.init_limit),
        "syncLimit": str(args.sync_limit),
        "forceSync": "yes",
        "snapCount": "100000",
    }


def wait_healthy(ens: LocalEnsemble, timeout: float = 90.0) -> LocalServer:
    """One leader, the others following, and a write through every member acknowledged: the
    ensemble is back at full strength (a restarted member has rejoined and caught up)."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        modes = list(ens.modes().values())  # None for a member not answering yet
        if modes.count("leader") == 1 and modes.count("follower") == ens.size - 1:
            try:
                for s in ens.servers:
                    c = SyncClient(s.address, io_timeout=5.0)
                    try:
                        create_tree(c, [HEALTH_NODE], b"")
                        err, _ = c.call(OpCode.SET_DATA, set_data_body(HEALTH_NODE, b"ok"))
                        if err != Err.OK:
                            raise WireError(f"{s.address}: setData error {err}")
                    finally:
                        c.close()
                leader = ens.leader()
                if leader is not None:
                    return leader
            except (OSError, WireError) as e:
                last = e
        else:
            last = modes
        time.sleep(0.05)
    raise TimeoutError(f"{ens.kind} ensemble not healthy within {timeout}s (last: {last})")


def log_problems(ens: LocalEnsemble, limit: int = 3) -> dict[int, list[str]]:
    """Tracebacks and ERROR lines from each server.log, so a bad run names its symptom."""
    pat = re.compile(r"Traceback|\bERROR\b|\bCRITICAL\b")
    out: dict[int, list[str]] = {}
    for s in ens.servers:
        try:
            lines = [ln for ln in s.log_path.read_text(errors="replace").splitlines() if pat.search(ln)]
        except OSError:
            continue
        if lines:
            out[s.server_id] = [f"{len(lines)} line(s)"] + lines[:limit]
    return out


def start_ensemble(kind: str, base: Path, settings: dict[str, str], attempts: int = 3) -> LocalEnsemble:
    """Start three servers; stop them all if any fails. The ports come from free_port, which
    releases them before the servers bind, so an outgoing connection (the probe opens many)
    can take one in between: then plan fresh ports and try again."""
    for attempt in range(1, attempts + 1):
        ens = LocalEnsemble(kind, base if attempt == 1 else base.with_name(f"{base.name}-retry{attempt}"), 3, 0, settings)
        try:
            return ens.start(timeout=90)
        except (RuntimeError, TimeoutError) as e:
            ens.stop()
            if "address already in use" not in str(e).lower() or attempt == attempts:
                raise
            say(f"[{LABEL[kind]}] a port was taken before the server bound it; new ports")
    raise AssertionError("unreachable")


def stop_ensemble(ens: LocalEnsemble) -> None:
    ens.stop()  # each server by its pid: SIGTERM, SIGKILL after a timeout


# --- throughput ----------------------------------------------------------------------------------


def bench_throughput(kind: str, base: Path, cfg: LoadConfig, args: argparse.Namespace) -> dict:
    ens = start_ensemble(kind, base, ensemble_settings(args))
    try:
        leader = wait_healthy(ens)
        addrs = [s.address for s in ens.servers]
        pids = {s.server_id: s.proc.pid for s in ens.servers}
        say(f"[{LABEL[kind]}] pids {pids}, leader {leader.server_id}; load {', '.join(cfg.ops)}")
        if args.server_warmup > 0:
            # JIT warm-up for the JVMs (a fresh ZooKeeper runs at a fraction of its speed for its
            # first seconds); zkchaos gets the same pass so both start from the same tree.
            run_load(addrs, replace(cfg, warmup=0.0, duration=args.server_warmup))
        else:
            prepare(addrs, cfg)
        samples: list[tuple[float, dict[int, float]]] = []

        def probe() -> float:
            per = {sid: process_cpu_seconds(pid) for sid, pid in pids.items()}
            samples.append((machine_busy_seconds(), per))
            return sum(per.values())

        res = run_load(addrs, cfg, cpu_probe=probe, setup=False)
        rows = {}
        for i, r in enumerate(res.results):
            (m0, c0), (m1, c1) = samples[2 * i], samples[2 * i + 1]
            per = {sid: (c1[sid] - c0[sid]) / cfg.duration for sid in pids}
            server = sum(per.values())
            rows[r.op] = {
                **asdict(r),
                "leader_cpu": per[leader.server_id],
                "follower_cpu": max(v for sid, v in per.items() if sid != leader.server_id),
                "other_cpu": max(0.0, (m1 - m0) / cfg.duration - server - r.client_cpu),
            }
        after = ens.leader()
        return {
            "leader": leader.server_id,
            "leader_changed": after is None or after.server_id != leader.server_id,
            "results": rows,
            "log_problems": log_problems(ens),
            "workdir": str(base),
        }
    finally:
        stop_ensemble(ens)


# --- failover ------------------------------------------------------------------------------------


def failover_round(ens: LocalEnsemble, args: argparse.Namespace) -> dict:
    leader = wait_healthy(ens)
    probe = WriteProbe(
        {s.server_id: s.address for s in ens.servers},
        f"{FAIL_ROOT}/p-",
        interval_s=args.probe_interval_ms / 1000,
        stuck_s=args.probe_stuck_ms / 1000,
    )
    steady_from = time.monotonic_ns()
    probe.start()
    try:
        time.sleep(args.steady)  # the light write load settles before the crash
        steady = [a for a in list(probe.acks) if a.err == 0 and a.sent_ns >= steady_from]
        if not steady:
            raise RuntimeError(f"{ens.kind}: the probe got no create acknowledged before the kill")
        probe.exclude(leader.server_id)  # only the survivors are probed from here on
        t0 = time.monotonic_ns()
        leader.kill()  # SIGKILL, then reaped: the old leader can decide nothing after this
        dead = time.monotonic_ns()
        probe.mark(dead)
        first = probe.wait_ok_after_mark(args.failover_timeout)
        survivors = [s.server_id for s in ens.servers if s.server_id != leader.server_id]
        until = time.monotonic() + 2.0  # also catch the other survivor's first write, if close
        while time.monotonic() < until and any(probe.first_ok_after(dead, sid) is None for sid in survivors):
            time.sleep(0.01)
    finally:
        probe.stop()
    lat = sorted(a.acked_ns - a.sent_ns for a in steady)
    per_server = {}
    for sid in survivors:
        a = probe.first_ok_after(dead, sid)
        per_server[sid] = None if a is None else (a.acked_ns - t0) / 1e9
    errs = [a.err for a in probe.acks if a.sent_ns >= dead and a.err != 0]
    new_leader = ens.wait_for_leader(30, exclude=leader.server_id)
    out = {
        "killed": leader.server_id,
        "new_leader": new_leader.server_id,
        "failover_s": None if first is None else (first.acked_ns - t0) / 1e9,
        "first_write_via": None if first is None else first.sid,
        "first_ok_per_survivor_s": per_server,
        "kill_to_reaped_ms": (dead - t0) / 1e6,
        "steady_write_p50_ms": lat[len(lat) // 2] / 1e6,
        "steady_writes": len(steady),
        "error_replies_after_kill": dict((e, errs.count(e)) for e in set(errs)),
        "probe": dict(probe.counters),
    }
    restart(leader)  # back to three members before the next round
    return out


def restart(server: LocalServer, attempts: int = 5) -> None:
    """Start a killed member again. While it was down an outgoing connection may have been
    given one of its ports; such connections are short-lived, so wait a little and retry."""
    for attempt in range(1, attempts + 1):
        try:
            server.start(wait=True, timeout=90)
            return
        except RuntimeError as e:
            server.stop()
            if "address already in use" not in str(e).lower() or attempt == attempts:
                raise
            time.sleep(1.0)


def bench_failover(kind: str, base: Path, cfg: LoadConfig, args: argparse.Namespace) -> dict:
    ens = start_ensemble(kind, base, ensemble_settings(args))
    rounds = []
    try:
        wait_healthy(ens)
        addrs = [s.address for s in ens.servers]
        # Same tree for both kinds (the leader's snapshot at election time scales with it), and
        # a short setData pass to warm the JVMs' write path; creates would make the trees differ.
        run_load(addrs, replace(cfg, ops=("setData",), warmup=0.0, duration=args.failover_warmup))
        c = SyncClient(addrs[0])
        try:
            create_tree(c, [FAIL_ROOT], b"")
        finally:
            c.close()
        for n in range(args.failover_rounds):
            r = failover_round(ens, args)
            fs = "timeout" if r["failover_s"] is None else f"{r['failover_s'] * 1000:.0f} ms"
            say(f"[{LABEL[kind]}] round {n + 1}: killed {r['killed']}, new leader {r['new_leader']}, {fs}")
            rounds.append(r)
        wait_healthy(ens)
        return {"rounds": rounds, "log_problems": log_problems(ens), "workdir": str(base)}
    finally:
        stop_ensemble(ens)


# --- report --------------------------------------------------------------------------------------


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _f(x: float | None, fmt: str = "{:.2f}") -> str:
    return "-" if x is None else fmt.format(x)


def best_of(rounds: list[dict[str, dict]]) -> dict[str, dict]:
    """Per kind and op, the round with the highest throughput: on a shared machine the fastest
    round is the one least disturbed by other processes, so it is the fairest to compare."""
    best: dict[str, dict] = {}
    for n, rnd in enumerate(rounds, 1):
        for kind, d in rnd.items():
            b = best.setdefault(kind, {"results": {}, "leader_changed": False})
            b["leader_changed"] |= d["leader_changed"]
            for op, r in d["results"].items():
                if op not in b["results"] or r["ops_per_s"] > b["results"][op]["ops_per_s"]:
                    b["results"][op] = {**r, "round": n}
    return best


def print_throughput(tp: dict[str, dict], cfg: LoadConfig, title: str) -> None:
    t = Table(title=f"3-node ensemble throughput, {title} (sessions spread over all 3 servers)")
    for col in ("op", "zkchaos ops/s", "ZooKeeper ops/s", "ratio", "zc p50/p99 ms", "zk p50/p99 ms",
                "srv CPU zc/zk", "leader CPU zc/zk", "max follower CPU zc/zk", "client CPU zc/zk",
                "other CPU zc/zk", "errors zc/zk"):
        t.add_column(col, justify="left" if col == "op" else "right")
    for op in cfg.ops:
        a, b = (tp.get(k, {}).get("results", {}).get(op) for k in KINDS)

        def pair(key: str) -> str:
            return "/".join(_f(r[key]) if r and r[key] is not None else "-" for r in (a, b))

        lat = ["-" if r is None else f"{r['p50_ms']:.2f}/{r['p99_ms']:.2f}" for r in (a, b)]
        errs = "/".join("-" if r is None else str(r["errors"] + r["protocol_errors"]) for r in (a, b))
        t.add_row(op, _f(a and a["ops_per_s"], "{:.0f}"), _f(b and b["ops_per_s"], "{:.0f}"),
                  _f(_ratio(a and a["ops_per_s"], b and b["ops_per_s"])), *lat, pair("server_cpu"),
                  pair("leader_cpu"), pair("follower_cpu"), pair("client_cpu"), pair("other_cpu"), errs)
    console.print(t)
    for kind, d in tp.items():
        for r in d["results"].values():
            if r["errors"] or r["protocol_errors"]:
                say(f"  {LABEL[kind]} {r['op']}: error codes {r['error_codes']}, protocol errors {r['protocol_errors']}")
        if d["leader_changed"]:
            say(f"  {LABEL[kind]}: the leader changed during the throughput run")


def print_failover(fo: dict[str, dict]) -> None:
    t = Table(title="failover: SIGKILL the leader -> first create acknowledged (sent after the kill)")
    t.add_column("round")
    for k in KINDS:
        if k in fo:
            t.add_column(f"{LABEL[k]} s", justify="right")
            t.add_column(f"{LABEL[k]} killed->new, per survivor s", justify="right")
    n = max(len(d["rounds"]) for d in fo.values())
    for i in range(n):
        row = [str(i + 1)]
        for k in KINDS:
            if k in fo:
                r = fo[k]["rounds"][i] if i < len(fo[k]["rounds"]) else None
                per = "" if r is None else ", ".join(f"{s}:{_f(v, '{:.3f}')}" for s, v in r["first_ok_per_survivor_s"].items())
                row += ["-" if r is None else _f(r["failover_s"], "{:.3f}"),
                        "-" if r is None else f"{r['killed']}->{r['new_leader']}  ({per})"]
        t.add_row(*row)
    med = ["median"]
    for k in KINDS:
        if k in fo:
            med += [_f(fo[k]["median_s"], "{:.3f}"), ""]
    t.add_row(*med)
    console.print(t)
    for k, d in fo.items():
        for i, r in enumerate(d["rounds"], 1):
            if r["error_replies_after_kill"]:
                say(f"  {LABEL[k]} round {i}: error replies after the kill {r['error_replies_after_kill']}")
        steady = statistics.median(r["steady_write_p50_ms"] for r in d["rounds"])
        say(f"  {LABEL[k]}: probe steady-state create p50 {steady:.2f} ms; counters of last round {d['rounds'][-1]['probe']}")


def summary(tp: dict[str, dict], fo: dict[str, dict], best: bool) -> tuple[str, dict]:
    parts, ratios = [], {}
    for op in ("getData", "setData", "create"):
        a, b = (tp.get(k, {}).get("results", {}).get(op) for k in KINDS)
        r = _ratio(a and a["ops_per_s"], b and b["ops_per_s"])
        if r is not None:
            ratios[op] = r
            parts.append(f"{op} x{r:.2f} ({'OK' if r >= 1.0 else 'MISS'} >=1.0)")
    if all(k in fo for k in KINDS):
        r = _ratio(fo["zkchaos"]["median_s"], fo["zookeeper"]["median_s"])
        if r is not None:
            ratios["failover"] = r
            parts.append(
                f"failover {fo['zkchaos']['median_s']:.3f}s/{fo['zookeeper']['median_s']:.3f}s "
                f"= x{r:.2f} ({'OK' if r <= 1.0 else 'MISS'} <=1.0)"
            )
    return "zkchaos/ZooKeeper" + (" (best round)" if best else "") + ": " + ("; ".join(parts) or "no ratios (run both kinds)"), ratios


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_load_args(ap)
    ap.set_defaults(connections=6)  # 2 x 6 sessions: four on each of the three servers
    ap.add_argument("--kinds", default=",".join(KINDS), help="which ensembles: zkchaos,zookeeper")
    ap.add_argument("--tick-time", type=int, default=2000)
    ap.add_argument("--init-limit", type=int, default=10)
    ap.add_argument("--sync-limit", type=int, default=5)
    ap.add_argument("--server-warmup", type=float, default=3.0, help="unmeasured seconds per op before measuring")
    ap.add_argument("--repeat", type=int, default=1, help="throughput rounds (kinds alternate); reports the best too")
    ap.add_argument("--failover-rounds", type=int, default=3)
    ap.add_argument("--failover-warmup", type=float, default=2.0, help="seconds of setData before the rounds")
    ap.add_argument("--failover-timeout", type=float, default=60.0)
    ap.add_argument("--steady", type=float, default=1.0, help="seconds of probe load before each kill")
    ap.add_argument("--probe-interval-ms", type=float, default=5.0, help="a create per server this often")
    ap.add_argument("--probe-stuck-ms", type=float, default=1000.0, help="replace a session silent this long")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--skip-failover", action="store_true")
    ap.add_argument("--workdir", help="server directories go here (default: a temporary directory)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    cfg = config_from_args(args)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    if not kinds or any(k not in KINDS for k in kinds):
        raise SystemExit(f"--kinds: choose from {', '.join(KINDS)}")
    if "zookeeper" in kinds and not apache_zookeeper_available():
        raise SystemExit("Apache ZooKeeper (Debian package zookeeper) or java is missing")
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="zkens-"))
    loads = {"start": os.getloadavg()}
    rounds: list[dict[str, dict]] = []  # throughput, one dict per round: kind -> result
    fo: dict[str, dict] = {}
    keep = bool(args.workdir)
    try:
        for n in range(0 if args.skip_throughput else args.repeat):
            rounds.append({})
            for kind in kinds:  # alternate kinds, so a burst of outside load hits both alike
                loads[f"{kind}-throughput{n + 1}"] = os.getloadavg()
                rounds[n][kind] = bench_throughput(kind, workdir / f"{kind}-throughput{n + 1}", cfg, args)
        for kind in kinds:
            if not args.skip_failover:
                loads[f"{kind}-failover"] = os.getloadavg()
                fo[kind] = bench_failover(kind, workdir / f"{kind}-failover", cfg, args)
                done = [r["failover_s"] for r in fo[kind]["rounds"] if r["failover_s"] is not None]
                fo[kind]["median_s"] = statistics.median(done) if done else None
    except BaseException:
        keep = True  # the server logs are the evidence
        raise
    finally:
        loads["end"] = os.getloadavg()
        srcs = [(f"throughput{n + 1}", rnd) for n, rnd in enumerate(rounds)] + [("failover", fo)]
        problems = {f"{k} {ph}": d["log_problems"] for ph, src in srcs for k, d in src.items() if d["log_problems"]}
        if any(key.startswith("zkchaos") for key in problems):
            keep = True  # zkchaos should log no errors; ZooKeeper logs some on every lost peer
        if keep:
            say(f"server directories kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    say(
        f"\n{cfg.processes} processes x {cfg.connections} sessions x window {cfg.window}; "
        f"{cfg.warmup:g} s warm-up + {cfg.duration:g} s per op; {cfg.nodes} nodes of {cfg.value_size} bytes; "
        f"tickTime {args.tick_time} initLimit {args.init_limit} syncLimit {args.sync_limit} forceSync yes"
    )
    say("load average (1/5/15 min): " + "; ".join(f"{k} {v[0]:.2f}/{v[1]:.2f}/{v[2]:.2f}" for k, v in loads.items()))
    for n, rnd in enumerate(rounds, 1):
        print_throughput(rnd, cfg, f"round {n} of {len(rounds)}")
    tp = best_of(rounds) if len(rounds) > 1 else (rounds[0] if rounds else {})
    if len(rounds) > 1:
        print_throughput(tp, cfg, f"best of {len(rounds)} rounds per server kind and op")
    if rounds:
        say("CPU in cores (of 2) over the measured interval; srv = sum of the 3 server pids; "
            "other = processes besides the servers and the load generator (other agents).")
    if fo:
        print_failover(fo)
    for where, p in problems.items():
        for sid, lines in p.items():
            say(f"  log {where} server {sid}: " + " | ".join(lines))
    line, ratios = summary(tp, fo, len(rounds) > 1)
    say(line)
    if args.json:
        doc = {"args": vars(args), "load_average": loads, "throughput_rounds": rounds, "throughput_best": tp, "failover": fo, "ratios": ratios}
        Path(args.json).write_text(json.dumps(doc, indent=2, default=str))
        say(f"results written to {args.json}")


if __name__ == "__main__":
    main()
