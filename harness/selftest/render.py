"""How the detection matrix is shown: a rich table in the terminal, `selftest.json`, and
`selftest.html` beside it (one self-contained page linking each run's own report)."""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.exits import EXIT_VALID

from . import verdict

if TYPE_CHECKING:
    from rich.console import Console

COLOURS = {verdict.CAUGHT: "green", verdict.VALID: "green", verdict.MISSED: "red", verdict.INVALID: "red",
           verdict.UNKNOWN: "yellow"}


def _found(runs: list[dict[str, Any]]) -> str:
    return ", ".join(sorted({k for run in runs for k in run["kinds"]}))


def _seed_list(runs: list[dict[str, Any]]) -> str:
    return ",".join(str(run["seed"]) for run in runs)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"


def print_matrix(console: Console, matrix: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table("mutant", "layer", "campaign test", "seeds", "result", "first anomaly", "anomalies found",
                  title="selftest: detection matrix")
    for r in matrix["mutants"]:
        colour = COLOURS[r["status"]]
        table.add_row(r["name"], r["layer"], r["test"], _seed_list(r["runs"]), f"[{colour}]{r['status']} {r['caught']}[/]",
                      _seconds(r["first_anomaly_s"]), _found(r["runs"]) or "-")
    console.print(table)
    controls = Table("control (unchanged server)", "seeds", "result", "anomalies found", title="controls")
    for c in matrix["controls"]:
        controls.add_row(c["test"], _seed_list(c["runs"]), f"[{COLOURS[c['status']]}]{c['status']}[/]",
                         _found(c["runs"]) or "-")
    console.print(controls)


def write_json(path: Path, matrix: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(matrix, indent=2) + "\n")


def _link(run: dict[str, Any], base: Path) -> str:
    """The run's report, relative to the page, labelled by its seed and outcome."""
    text = html.escape(f"seed {run['seed']}: {run['status']}")
    if not run["path"]:
        return text
    href = os.path.relpath(Path(run["path"]) / "report.html", base)
    return f'<a href="{html.escape(href)}">{text}</a>'


def _cells(values: list[str]) -> str:
    return "".join(f"<td>{v}</td>" for v in values)


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>zkchaos selftest</title><style>
body {{ font: 14px system-ui, sans-serif; margin: 2em; }} table {{ border-collapse: collapse; margin-bottom: 2em; }}
td, th {{ border: 1px solid #ccc; padding: .3em .6em; vertical-align: top; text-align: left; }}
.caught, .valid {{ color: #060; font-weight: bold; }} .missed, .invalid {{ color: #b00; font-weight: bold; }}
.unknown {{ color: #a60; font-weight: bold; }} .small {{ color: #555; font-size: 90%; }}
</style></head><body>
<h1>zkchaos selftest: <span class="{verdict}">{headline}</span></h1>
<p class="small">{meta}</p>
<h2>Mutants</h2>
<table><tr><th>mutant</th><th>layer</th><th>the slip</th><th>campaign test</th><th>expected</th><th>result</th>
<th>first anomaly</th><th>runs</th></tr>
{mutants}</table>
<h2>Controls (the unchanged server)</h2>
<table><tr><th>campaign test</th><th>result</th><th>anomalies found</th><th>runs</th></tr>
{controls}</table>
</body></html>
"""


def write_html(path: Path, matrix: dict[str, Any]) -> None:
    base = path.parent
    mutants = []
    for r in matrix["mutants"]:
        status = f'<span class="{r["status"]}">{r["status"]} {r["caught"]}</span>'
        found = html.escape(_found(r["runs"]) or "none")
        mutants.append("<tr>" + _cells([
            html.escape(r["name"]), html.escape(r["layer"]),
            f'{html.escape(r["description"])}<div class="small">{html.escape(r["file"])}</div>',
            html.escape(r["test"]), html.escape(", ".join(r["expects"])),
            f'{status}<div class="small">found: {found}</div>', _seconds(r["first_anomaly_s"]),
            "<br>".join(_link(run, base) for run in r["runs"])]) + "</tr>")
    controls = []
    for c in matrix["controls"]:
        found = html.escape(_found(c["runs"]) or "none")
        controls.append("<tr>" + _cells([
            html.escape(c["test"]), f'<span class="{c["status"]}">{c["status"]}</span>', found,
            "<br>".join(_link(run, base) for run in c["runs"])]) + "</tr>")
    ok = matrix["exit_code"] == EXIT_VALID
    meta = html.escape(f"campaign {matrix.get('campaign')}, {matrix.get('runs_per_mutant')} run(s) each, "
                       f"started {matrix.get('started')}")
    path.write_text(PAGE.format(verdict=verdict.CAUGHT if ok else verdict.MISSED,
                                headline="every mutant caught, every control valid" if ok else "not proven",
                                meta=meta, mutants="\n".join(mutants), controls="\n".join(controls)))
