"""report.html: one self-contained page per run, readable offline and printed (pandas does the
per-second aggregation; the pictures are SVG drawn here, see svg.py).

Summary first (the verdict, what was tested, each anomaly in a sentence with a timeline of the
operations around it: one lane per process, bars from invocation to completion coloured by
outcome, the faults shaded, the operations involved outlined); then the faults, per-node and
per-operation tables, latency, throughput and clock offsets over time (all zoomable to one time
range together), links to every node's server log, and the options, folded away.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

from jinja2 import Environment, PackageLoader, select_autoescape

from harness.checkers.history import NEMESIS, Op, pair_ops

from . import svg

MAX_ANOMALIES = 40  # drawn with a timeline; the rest are counted
MAX_LANES = 24
MAX_DOTS = 20_000  # latency dots drawn (a sample beyond that; every failed or unknown op kept)
STATIC = Path(__file__).with_name("static")

_env = Environment(loader=PackageLoader("reports", "templates"), autoescape=select_autoescape(["html"]))


def verdict_word(valid: Any) -> str:
    return {True: "valid", False: "invalid"}.get(valid, "unknown")


def involved(anomaly: dict) -> set[int]:
    """Record indices an anomaly names: its op, witnesses, and other ops it cites."""
    found: set[int] = set()

    def take(x: Any) -> None:
        if isinstance(x, bool):
            return
        if isinstance(x, int):
            found.add(x)
        elif isinstance(x, dict):
            for k in ("invoke_index", "index"):
                if isinstance(x.get(k), int):
                    found.add(x[k])
        elif isinstance(x, list):
            for y in x:
                take(y)

    for key in ("op", "witness", "witnesses", "add", "others", "read", "ops"):
        take(anomaly.get(key))
    return found


def anomalies_of(results: dict) -> list[dict]:
    """Every part's anomalies (not only the capped top-level list), violations first."""
    out = []
    for name, part in results.items():
        if isinstance(part, dict) and name != "stats":
            out += [dict(a, checker=name) for a in part.get("anomalies", ())]
    return sorted(out, key=lambda a: a.get("zookeeper") == "allowed")


def fault_windows(results: dict) -> list[tuple[float, float, str]]:
    return [tuple(w) for w in (results.get("stats") or {}).get("fault_windows_s", [])]


def _op_label(op: Op) -> str:
    done = op.complete or {}
    return (f"{op.f} {op.value!r} -> {op.type}{(' ' + str(done.get('error'))) if done.get('error') else ''}; "
            f"process {op.process}, node {done.get('node') or op.invoke.get('node')}, zxid "
            f"{hex(op.zxid) if isinstance(op.zxid, int) else '-'}, records {op.call}..{done.get('index', '?')}")


def timeline_for(anomaly: dict, ops: list[Op], by_index: dict[int, Op], windows: list, t_end: float) -> str:
    named = [by_index[i] for i in involved(anomaly) if i in by_index]
    if not named:
        return ""
    starts = [o.invoke["time_ns"] / 1e9 for o in named]
    ends = [(o.complete or o.invoke)["time_ns"] / 1e9 for o in named]
    pad = max(0.5, (max(ends) - min(starts)) * 0.15)
    t0, t1 = max(0.0, min(starts) - pad), min(t_end, max(ends) + pad)
    marked = {id(o) for o in named}
    lanes: dict[Any, list[dict]] = defaultdict(list)
    for op in ops:
        start = op.invoke["time_ns"] / 1e9
        end = op.complete["time_ns"] / 1e9 if op.complete and op.type != "info" else None
        if start > t1 or (end is not None and end < t0):
            continue
        lanes[op.process].append({"start": start, "end": end, "type": op.type, "label": _op_label(op),
                                  "highlight": id(op) in marked})
    first = [o.process for o in named]
    order = list(dict.fromkeys(first + sorted(lanes, key=str)))[:MAX_LANES]
    shown = [(f"process {p}", lanes[p]) for p in order]
    near = [w for w in windows if w[1] >= t0 and w[0] <= t1]
    return svg.timeline(shown, near, t0, t1, f"operations around record {min(involved(anomaly))}")


def latency_chart(ops: list[Op], windows: list, t_end: float) -> str:
    done = [o for o in ops if o.complete is not None]
    dots: dict[str, list[tuple[float, float]]] = defaultdict(list)
    step = max(1, math.ceil(len(done) / MAX_DOTS))
    for i, o in enumerate(done):
        if o.type == "ok" and i % step:
            continue
        dots[o.type].append((o.invoke["time_ns"] / 1e9, (o.complete["time_ns"] - o.invoke["time_ns"]) / 1e6))
    return svg.series(dict(dots), windows, 0.0, t_end, "latency of every operation", "ms", log=True, dots=True)


def operations_frame(ops: list[Op]):
    """One row per completed client operation: second it started, f, outcome, latency (ms)."""
    import pandas as pd

    return pd.DataFrame(
        [(o.invoke["time_ns"] // 1_000_000_000, o.f, o.type, (o.complete["time_ns"] - o.invoke["time_ns"]) / 1e6)
         for o in ops if o.complete is not None],
        columns=["second", "f", "type", "latency_ms"])


def quantile_chart(frame, windows: list, t_end: float) -> str:
    ok = frame[frame["type"] == "ok"]
    if ok.empty:
        return ""
    by_second = ok.groupby("second")["latency_ms"]
    table = by_second.quantile([.5, .95, .99]).unstack().assign(max=by_second.max())
    lines = {name: [(s + .5, v) for s, v in table[col].items()]
             for name, col in (("p50", .5), ("p95", .95), ("p99", .99), ("max", "max"))}
    return svg.series(lines, windows, 0.0, t_end, "latency quantiles per second (ok operations)", "ms", log=True)


def throughput_chart(frame, windows: list, t_end: float) -> str:
    if frame.empty:
        return ""
    counts = frame.groupby(["f", "type", "second"]).size()
    seconds = range(int(t_end) + 1)
    lines = {f"{f} {t}": [(s + .5, int(group.get(s, 0))) for s in seconds]
             for (f, t), group in ((k, g.droplevel([0, 1])) for k, g in counts.groupby(level=[0, 1]))}
    return svg.series(lines, windows, 0.0, t_end, "operations started per second, by op and outcome", "ops/s")


def clock_chart(records: list[dict], windows: list, t_end: float) -> str:
    try:
        from nemesis.clock_offsets import offsets_over_time
    except ImportError:
        return ""
    offsets = offsets_over_time(records)
    if not offsets:
        return ""
    return svg.series({n: [(t, ms) for t, ms in pts] for n, pts in offsets.items()}, windows, 0.0, t_end,
                      "clock offset per node", "ms")


def fault_rows(records: Iterable[dict]) -> list[dict]:
    rows, open_ = [], None
    for r in records:
        if r.get("process") != NEMESIS:
            continue
        if r["type"] == "invoke":
            open_ = r
        elif open_ is not None:
            value = open_.get("value") or {}
            params = {k: v for k, v in value.items() if k != "targets"} if isinstance(value, dict) else value
            rows.append({"f": open_["f"], "start": open_["time_ns"] / 1e9, "end": r["time_ns"] / 1e9,
                         "targets": ", ".join(value.get("targets", [])) if isinstance(value, dict) else "",
                         "params": params, "result": r.get("value"), "error": r.get("error")})
            open_ = None
    return rows


def render(records: list[dict[str, Any]], results: dict[str, Any], options: dict[str, Any]) -> str:
    ops = [o for o in pair_ops(records) if o.process != NEMESIS]
    by_index: dict[int, Op] = {}
    for o in ops:
        by_index[o.call] = o
        if o.complete is not None:
            by_index[o.complete["index"]] = o
    t_end = max((r["time_ns"] for r in records), default=0) / 1e9
    windows = fault_windows(results)
    found = anomalies_of(results)
    shown = [dict(a, timeline=timeline_for(a, ops, by_index, windows, t_end)) for a in found[:MAX_ANOMALIES]]
    stats = results.get("stats") or {}
    frame = operations_frame(ops)
    return _env.get_template("report.html").render(
        name=options.get("name") or "test", verdict=verdict_word(results.get("valid")),
        explanation=results.get("explanation", ""), options=options, stats=stats, anomalies=shown,
        more=len(found) - len(shown), kinds=_kinds(found), faults=fault_rows(records),
        nodes=options.get("nodes") or sorted(stats.get("nodes", {})), node_stats=stats.get("nodes", {}),
        charts=[c for c in (latency_chart(ops, windows, t_end), quantile_chart(frame, windows, t_end),
                            throughput_chart(frame, windows, t_end), clock_chart(records, windows, t_end)) if c],
        problems=[f"fault left in place: {f}" for f in stats.get("faults_left", [])]
        + results.get("teardown_problems", []),
        css=(STATIC / "report.css").read_text(), js=(STATIC / "report.js").read_text(),
    )


def _kinds(found: list[dict]) -> list[tuple[str, str, int]]:
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for a in found:
        counts[(a.get("classification") or a.get("type", "?"), a.get("zookeeper") or "violation")] += 1
    return sorted(((k, z, n) for (k, z), n in counts.items()), key=lambda t: (t[1] == "allowed", -t[2]))


def write_report(run_dir, records: list[dict[str, Any]], results: dict[str, Any], options: dict[str, Any]) -> None:
    (run_dir.path / "report.html").write_text(render(records, results, options))


__all__ = ["render", "write_report"]
