"""The report's pictures as inline SVG (no plotting library, no images): an operation timeline
around an anomaly, and time series (latency, throughput, clock offsets) with the fault windows
shaded. Every chart's x axis is time since the test started, in seconds; the page's script zooms
all of them to one time range at once (report.js), and the full range prints as it is."""

from __future__ import annotations

import html
import math
from typing import Iterable, Sequence

COLOURS = {"ok": "#1b9e3e", "fail": "#d95f02", "info": "#7570b3"}
SERIES = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
WIDTH, LANE, LEFT, TOP, BOTTOM = 960, 18, 110, 18, 26


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def ticks(lo: float, hi: float, n: int = 8) -> list[float]:
    """Round numbers spanning [lo, hi]."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 5, 10) if raw <= step * m)
    first = math.ceil(lo / step) * step
    return [round(first + i * step, 9) for i in range(int((hi - first) / step) + 1)]


class Frame:
    """Maps time (s) and values onto a plot area; the area is a nested <svg> whose viewBox the
    zoom script changes, so its contents are drawn in data units on x."""

    def __init__(self, t0: float, t1: float, height: int) -> None:
        self.t0, self.t1 = t0, max(t1, t0 + 1e-6)
        self.height = height
        self.plot_w = WIDTH - LEFT - 10

    def open(self, css: str, label: str) -> str:
        h = self.height + TOP + BOTTOM
        return (f'<svg class="chart {css}" viewBox="0 0 {WIDTH} {h}" width="100%" role="img" aria-label="{esc(label)}" '
                f'data-t0="{self.t0}" data-t1="{self.t1}">'
                f'<svg class="plot" x="{LEFT}" y="{TOP}" width="{self.plot_w}" height="{self.height}" '
                f'viewBox="{self.t0} 0 {self.t1 - self.t0} {self.height}" preserveAspectRatio="none">')

    def close(self, extra: str = "") -> str:
        """End the plot area, draw the time axis (and `extra`, in chart pixels), end the chart."""
        axis = [f'<g class="xaxis" transform="translate({LEFT},{TOP + self.height})">'
                f'<line x1="0" x2="{self.plot_w}" y1="0" y2="0" stroke="#999"/>']
        for t in ticks(self.t0, self.t1):
            x = (t - self.t0) / (self.t1 - self.t0) * self.plot_w
            axis.append(f'<g class="tick" data-t="{t}" transform="translate({x:.1f},0)"><line y2="4" stroke="#999"/>'
                        f'<text y="16" text-anchor="middle">{t:g}</text></g>')
        axis.append(f'<text x="{self.plot_w}" y="24" text-anchor="end" class="unit">s</text></g>')
        return "</svg>" + "".join(axis) + extra + "</svg>"

    def shade(self, windows: Iterable[tuple[float, float, str]]) -> str:
        return "".join(f'<rect class="fault" x="{a}" width="{max(b - a, 1e-3)}" y="0" height="{self.height}">'
                       f'<title>{esc(f)} {a:.1f}-{b:.1f} s</title></rect>' for a, b, f in windows)


def timeline(lanes: Sequence[tuple[str, Sequence[dict]]], windows: Sequence[tuple[float, float, str]],
             t0: float, t1: float, title: str) -> str:
    """One lane per process; each op a bar from invocation to completion (open-ended for unknown
    outcomes), coloured by outcome; ops marked `highlight` outlined. An op: {start, end, type,
    label, highlight}."""
    frame = Frame(t0, t1, LANE * max(len(lanes), 1))
    out = [frame.open("timeline", title), frame.shade(windows)]
    for i, (_, ops) in enumerate(lanes):
        y = i * LANE
        for op in ops:
            end = op["end"] if op["end"] is not None else t1
            css = "op hl" if op.get("highlight") else "op"
            out.append(f'<rect class="{css}" x="{op["start"]}" width="{max(end - op["start"], 1e-4)}" y="{y + 3}" '
                       f'height="{LANE - 6}" fill="{COLOURS.get(op["type"], "#999")}">'
                       f'<title>{esc(op["label"])}</title></rect>')
    names = "".join(f'<text class="lane" x="{LEFT - 6}" y="{TOP + i * LANE + LANE - 5}" text-anchor="end">{esc(name)}</text>'
                    for i, (name, _) in enumerate(lanes))
    out.append(frame.close(names))
    return "".join(out)


def series(lines: dict[str, Sequence[tuple[float, float]]], windows: Sequence[tuple[float, float, str]],
           t0: float, t1: float, title: str, unit: str, height: int = 180, log: bool = False,
           dots: bool = False) -> str:
    """Time series: one polyline per name (or dots), y scaled to the data (log10(1+y) when `log`)."""
    ys = [y for pts in lines.values() for _, y in pts]
    top = max(ys, default=1.0) or 1.0
    scale = (lambda v: math.log10(1 + max(v, 0)) / math.log10(1 + top)) if log else (lambda v: v / top)
    frame = Frame(t0, t1, height)
    out = [frame.open("series", title), frame.shade(windows)]
    for i, (name, pts) in enumerate(lines.items()):
        colour = COLOURS.get(name, SERIES[i % len(SERIES)])
        coords = [(t, height - scale(y) * (height - 4) - 2) for t, y in pts]
        if dots:  # zero-length strokes with round caps: dots that keep their size when zoomed
            path = "".join(f"M{t:.4f} {y:.1f}h0" for t, y in coords)
            out.append(f'<path class="dots" d="{path}" stroke="{colour}" stroke-width="3" stroke-linecap="round" '
                       f'vector-effect="non-scaling-stroke"><title>{esc(name)}</title></path>')
        elif coords:
            path = " ".join(f"{t:.3f},{y:.1f}" for t, y in coords)
            out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" vector-effect="non-scaling-stroke" '
                       f'points="{path}"><title>{esc(name)}</title></polyline>')
    legend = "".join(f'<tspan fill="{COLOURS.get(n, SERIES[i % len(SERIES)])}">\u25a0 {esc(n)}  </tspan>'
                     for i, n in enumerate(lines))
    label = (f'<text x="{LEFT}" y="12" class="legend">{legend}</text>'
             f'<text x="{LEFT - 6}" y="{TOP + 10}" text-anchor="end" class="unit">{top:.3g} {esc(unit)}</text>'
             f'<text x="{LEFT - 6}" y="{TOP + height}" text-anchor="end" class="unit">0</text>')
    out.append(frame.close(label))
    return "".join(out)
