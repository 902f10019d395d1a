"""report.html: one self-contained page per run (verdict, anomalies, statistics, plots).

Plots are matplotlib PNGs embedded as data URIs, so the file can be mailed or archived by CI
as it is. Jepsen-style: latency of every op over time, coloured by outcome, with the fault
windows shaded; and throughput per second.
"""

from __future__ import annotations

import base64
import io
import json
from typing import Any

from jinja2 import Environment

from .terminal import fmt as _fmt

TEMPLATE = """<!doctype html>
<html><head><meta charset="utf-8"><title>zkchaos {{ name }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 1.6em; }
.valid { color: #0a7d28; } .invalid { color: #b3261e; } .unknown { color: #a15c00; }
table { border-collapse: collapse; margin: .5em 0; } td, th { border: 1px solid #ccc; padding: .2em .6em; text-align: right; }
th { background: #f3f3f3; } td.l, th.l { text-align: left; }
pre { background: #f7f7f7; padding: .8em; overflow-x: auto; font-size: .85em; }
img { max-width: 100%; border: 1px solid #eee; }
</style></head><body>
<h1>zkchaos test <code>{{ name }}</code>: <span class="{{ verdict_class }}">{{ verdict }}</span></h1>
<p>{{ explanation }}</p>
<h2>Options</h2>
<table>{% for k, v in options %}<tr><th class="l">{{ k }}</th><td class="l">{{ v }}</td></tr>{% endfor %}</table>
<h2>Operations</h2>
<table><tr><th class="l">op</th><th>ok</th><th>fail</th><th>info</th><th>p50 ms</th><th>p99 ms</th><th>max ms</th></tr>
{% for f, row in ops %}<tr><td class="l">{{ f }}</td><td>{{ row.ok }}</td><td>{{ row.fail }}</td><td>{{ row.info }}</td>
<td>{{ fmt(row.p50_ms) }}</td><td>{{ fmt(row.p99_ms) }}</td><td>{{ fmt(row.max_ms) }}</td></tr>{% endfor %}</table>
<p>{{ total_ops }} client operations{% if ops_per_s %}, {{ fmt(ops_per_s) }} ops/s{% endif %}.
During faults: {{ during }}; outside: {{ outside }}.</p>
<h2>Faults</h2>
<table><tr><th class="l">fault</th><th class="l">from (s)</th><th class="l">to (s)</th></tr>
{% for a, b, f in windows %}<tr><td class="l">{{ f }}</td><td class="l">{{ fmt(a) }}</td><td class="l">{{ fmt(b) }}</td></tr>{% endfor %}</table>
{% for title, png in plots %}<h2>{{ title }}</h2><img src="data:image/png;base64,{{ png }}" alt="{{ title }}">{% endfor %}
<h2>Anomalies</h2>
{% if anomalies %}<pre>{{ anomalies }}</pre>{% else %}<p>none</p>{% endif %}
</body></html>
"""


def _plots(records: list[dict[str, Any]], windows: list) -> list[tuple[str, str]]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    df = operations_frame(records)
    if df.empty:
        return []
    out = []
    fig, ax = plt.subplots(figsize=(10, 4))
    colours = {"ok": "#1b9e3e", "fail": "#d95f02", "info": "#7570b3"}
    for outcome, group in df.groupby("type"):
        ax.scatter(group["start_s"], group["latency_ms"].fillna(0), s=4, label=str(outcome), c=colours.get(str(outcome), "#999"))
    for a, b, f in windows:
        ax.axvspan(a, b, color="#f4cccc", alpha=0.4, lw=0)
    ax.set_yscale("symlog")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("latency (ms)")
    ax.legend(loc="upper right", markerscale=3)
    out.append(("Latency of every operation (shaded: faults)", _png(fig, plt)))
    fig, ax = plt.subplots(figsize=(10, 3))
    per_s = df.assign(second=df["start_s"].astype(int)).groupby(["second", "type"]).size().unstack(fill_value=0)
    per_s.plot(ax=ax, color=[colours.get(c, "#999") for c in per_s.columns])
    for a, b, f in windows:
        ax.axvspan(a, b, color="#f4cccc", alpha=0.4, lw=0)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("ops/s")
    out.append(("Throughput by outcome", _png(fig, plt)))
    return out


def operations_frame(records: list[dict[str, Any]]):
    """One row per client operation (invocation joined with its completion), for the plots."""
    import pandas as pd

    from harness.checkers.history import NEMESIS, pair_ops

    rows = [{
        "process": op.process, "node": op.invoke.get("node"), "f": op.f,
        "start_s": op.invoke["time_ns"] / 1e9,
        "latency_ms": (op.complete["time_ns"] - op.invoke["time_ns"]) / 1e6 if op.complete else None,
        "type": op.type,
    } for op in pair_ops(records) if op.process != NEMESIS]
    return pd.DataFrame(rows, columns=["process", "node", "f", "start_s", "latency_ms", "type"])


def _png(fig, plt) -> str:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def render(records: list[dict[str, Any]], results: dict[str, Any], options: dict[str, Any]) -> str:
    stats = results.get("stats", {})
    valid = results.get("valid")
    verdict = {True: "valid", False: "invalid"}.get(valid, "unknown")
    anomalies = results.get("anomalies")
    env = Environment(autoescape=True)
    return env.from_string(TEMPLATE).render(
        name=options.get("name", "test"),
        verdict=verdict.upper(),
        verdict_class=verdict,
        explanation=results.get("explanation", ""),
        options=sorted((k, v) for k, v in options.items() if k not in ("ssh_password",)),
        ops=sorted(stats.get("ops", {}).items()),
        total_ops=stats.get("total_ops", 0),
        ops_per_s=stats.get("ops_per_s"),
        during=stats.get("during_faults", {}),
        outside=stats.get("outside_faults", {}),
        windows=stats.get("fault_windows_s", []),
        plots=_plots(records, stats.get("fault_windows_s", [])),
        anomalies=json.dumps(anomalies, indent=2, default=str) if anomalies else "",
        fmt=_fmt,
    )


def write_report(run_dir, records: list[dict[str, Any]], results: dict[str, Any], options: dict[str, Any]) -> None:
    (run_dir.path / "report.html").write_text(render(records, results, options))


__all__ = ["render", "write_report"]
