"""What the terminal shows: live progress while a test runs, and the summary after it."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

VERDICT_STYLE = {True: "bold green", False: "bold red", "unknown": "bold yellow"}
LOG_WIDTH = 160  # when the output is a file or a CI log: wide enough that tables do not wrap


def make_console() -> Console:
    """The terminal's own width on a terminal; a wide one for logs, where wrapping only hurts."""
    import sys

    return Console() if sys.stdout.isatty() else Console(width=LOG_WIDTH)


def follow_progress(run, time_limit: float) -> None:
    """Until the time limit: elapsed / limit, ops/s, ok/fail/info counts, the active fault."""
    console: Console | None = run.console
    state = run.state
    start = state.started

    def render() -> Panel:
        elapsed = time.monotonic() - start
        total = state.ok + state.fail + state.info
        rate = total / elapsed if elapsed > 0 else 0.0
        fault = run.schedule.describe_active() if run.schedule else "none"
        t = Table.grid(padding=(0, 2))
        t.add_row("elapsed", f"{elapsed:5.1f} / {time_limit:.0f} s", "ops/s", f"{rate:7.1f}")
        t.add_row("ok", str(state.ok), "fail", str(state.fail))
        t.add_row("info", str(state.info), "active fault", fault)
        return Panel(t, title=f"zkchaos test: {run.opts.test_name()}", subtitle=state.phase)

    deadline = start + time_limit
    if console is None or not console.is_terminal:
        # Not a terminal (CI, a pipe): a plain line every few seconds instead of a live panel.
        while not run.stop.wait(max(0.0, min(5.0, deadline - time.monotonic()))):
            if time.monotonic() >= deadline:
                return
            if console is not None:
                fault = run.schedule.describe_active() if run.schedule else "none"
                console.print(
                    f"{time.monotonic() - start:5.1f}s ok={state.ok} fail={state.fail} info={state.info} fault={fault}"
                )
        return
    with Live(render(), console=console, refresh_per_second=4, transient=False) as live:
        while time.monotonic() < deadline and not run.stop.is_set():
            run.stop.wait(0.25)
            live.update(render())


def fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.1f}"
    return str(v)


def summary(results: dict[str, Any]) -> Group:
    """Ops by type and outcome, latencies, faults injected, the verdict and why."""
    stats = results.get("stats", {})
    ops = Table("op", "ok", "fail", "info", "p50 ms", "p99 ms", "max ms", title="operations")
    for f, row in sorted(stats.get("ops", {}).items()):
        ops.add_row(f, *(fmt(row.get(k)) for k in ("ok", "fail", "info", "p50_ms", "p99_ms", "max_ms")))
    faults = Table("fault", "count", "during faults: ok/fail/info", title="nemesis")
    for f, n in sorted(stats.get("faults", {}).items()):
        faults.add_row(f, str(n), "")
    during = stats.get("during_faults")
    if during:
        faults.add_row("(all)", "", f"{during.get('ok', 0)}/{during.get('fail', 0)}/{during.get('info', 0)}")
    valid = results.get("valid")
    style = VERDICT_STYLE.get(valid, "bold yellow")
    verdict = {True: "VALID", False: "INVALID"}.get(valid, "UNKNOWN")
    lines: list = [ops, faults]
    found = anomaly_counts(results)
    if found:
        kinds = Table("anomaly", "count", "ZooKeeper's model", title="what the checkers found")
        for (allowed, what), n in found.items():
            kinds.add_row(what, str(n), "[green]allowed[/]" if allowed else "[red]violation[/]")
        lines.append(kinds)
    lines.append(f"[{style}]{verdict}[/]: {results.get('explanation', '')}")
    return Group(*lines)


def anomaly_counts(results: dict[str, Any]) -> dict[tuple[bool, str], int]:
    """(allowed by ZooKeeper's model?, what it proves) -> how many, violations first."""
    counts: dict[tuple[bool, str], int] = {}
    for name, part in results.items():
        if not isinstance(part, dict) or name == "stats":
            continue
        if part.get("summary"):  # the checker's own count (its anomaly list may be cut short)
            for row in part["summary"]:
                what = (row["zookeeper"] == "allowed", row["classification"])
                counts[what] = counts.get(what, 0) + row["count"]
            continue
        for a in part.get("anomalies", ()):
            what = (a.get("zookeeper") == "allowed", a.get("classification") or a.get("type", "?"))
            counts[what] = counts.get(what, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (kv[0][0], -kv[1], kv[0][1])))


MAX_LISTED = 30  # anomalies listed one by one; results.json and the report have them all


def anomaly_table(results: dict[str, Any]) -> Table | None:
    """Every anomaly (up to MAX_LISTED): kind, where (key, node, session), ops, explanation."""
    rows = []
    for name, part in results.items():
        if isinstance(part, dict) and name != "stats":
            rows += part.get("anomalies", ())
    if not rows:
        return None
    rows.sort(key=lambda a: a.get("zookeeper") == "allowed")
    table = Table("kind", "where", "records", "explanation", title=f"anomalies ({len(rows)})")
    for a in rows[:MAX_LISTED]:
        where = ", ".join(f"{k} {a[k]}" for k in ("key", "element", "name", "session", "node") if a.get(k) is not None)
        op = a.get("op") if isinstance(a.get("op"), dict) else {}
        records = str(op.get("invoke_index", op.get("index", "")))
        style = "yellow" if a.get("zookeeper") == "allowed" else "red"
        table.add_row(f"[{style}]{a.get('type', '?')}[/]", where, records, str(a.get("explanation", "")))
    if len(rows) > MAX_LISTED:
        table.caption = f"{len(rows) - MAX_LISTED} more in results.json and the report"
    return table


def print_summary(console: Console, results: dict[str, Any], run_dir=None) -> None:
    console.print(summary(results))
    table = anomaly_table(results)
    if table is not None:
        console.print(table)
    if run_dir is not None:
        report = run_dir / "report.html"
        console.print(f"report: {report}" if report.exists() else f"store: {run_dir}")
