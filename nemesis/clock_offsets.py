"""Each node's clock offset over a run, from the history alone (for reports).

A clock fault's info completion says, per node, what was done (`{"nodes": {name: {...}}}`):
- bump-clock `{"from_ms", "to_ms"}`: a step;
- strobe-clock `{"from_ms", "high_ms", "period_ms", "duration_ms"}`: high first, flipping between
  high and from every period until the duration is over, then from (a square wave);
- skew-clock `{"from_ms", "to_ms", "duration_ms"}`: a ramp;
- reset-clock `{"to_ms": 0}`: a step back to real time, cutting short whatever still ran.
The fault takes effect on the nodes between its invocation and its completion; the completion's
time is taken as its start (a strobe or skew started on the first target a few SSH round trips
earlier). Entries with an "error" were not done and draw nothing.

The result is a polyline per node, [(seconds since the history began, offset ms), ...] in time
order; a step is two points at the same time. Every node starts at (0, 0): the family writes a
zero offset before the servers start.
"""

from __future__ import annotations

import bisect
from typing import Any, Iterable

from harness.history import INVOKE, NEMESIS

Point = tuple[float, float]
FS = ("bump-clock", "strobe-clock", "skew-clock", "reset-clock")


def offsets_over_time(history: Iterable[dict[str, Any]]) -> dict[str, list[Point]]:
    """node -> [(t_s, offset_ms), ...] for every node a clock fault touched."""
    lines: dict[str, list[Point]] = {}
    for f, t, nodes in _clock_completions(history):
        for name, done in nodes.items():
            if "error" in done:
                continue
            line = lines.setdefault(name, [(0.0, 0.0)])
            _cut(line, t)
            for point in _shape(f, t, done):
                _add(line, point)
    return lines


def _clock_completions(history: Iterable[dict[str, Any]]) -> Iterable[tuple[str, float, dict[str, dict]]]:
    """(f, completion time in s, per-node account) of each clock step that was done."""
    for rec in history:
        if rec.get("process") != NEMESIS or rec.get("f") not in FS or rec.get("type") == INVOKE:
            continue
        value = rec.get("value")
        if rec.get("error") is None and isinstance(value, dict) and isinstance(value.get("nodes"), dict):
            yield rec["f"], rec["time_ns"] / 1e9, value["nodes"]


def _shape(f: str, t: float, done: dict[str, Any]) -> list[Point]:
    """The points a step adds from time t on (the line already ends at t)."""
    if f in ("bump-clock", "reset-clock"):
        return [(t, float(done["to_ms"]))]
    if f == "skew-clock":
        return [(t, float(done["from_ms"])), (t + done["duration_ms"] / 1000, float(done["to_ms"]))]
    return _square_wave(t, float(done["from_ms"]), float(done["high_ms"]), done["period_ms"], done["duration_ms"])


def _square_wave(t: float, low: float, high: float, period_ms: float, duration_ms: float) -> list[Point]:
    """What the strobe loop writes: high at t, flipping every period while inside the duration,
    then low at its end."""
    out: list[Point] = []
    level, k = low, 0
    while k * period_ms < duration_ms:
        at = t + k * period_ms / 1000
        if k:
            out.append((at, level))
        level = high if k % 2 == 0 else low
        out.append((at, level))
        k += 1
    end = t + duration_ms / 1000
    return out + [(end, level), (end, low)]


def _cut(line: list[Point], t: float) -> None:
    """Drop what the line planned after t (a loop cut short), ending it at its value at t."""
    times = [p[0] for p in line]
    after = bisect.bisect_right(times, t)
    if after == len(line):
        _add(line, (t, line[-1][1]))
        return
    (t0, v0), (t1, v1) = line[after - 1], line[after]
    value = v0 + (v1 - v0) * (t - t0) / (t1 - t0)  # t0 <= t < t1
    del line[after:]
    _add(line, (t, value))


def _add(line: list[Point], point: Point) -> None:
    if line[-1] != point:
        line.append(point)
