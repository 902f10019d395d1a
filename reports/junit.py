"""JUnit XML for CI systems: one testcase per run of a campaign.

An invalid run is a <failure> whose message is the anomaly summary; a harness failure is an
<error>; an unknown verdict is <skipped> with the reason (CI shows it as neither green nor red);
every testcase's <system-out> is the run's directory in the store.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Iterable

from harness.exits import EXIT_HARNESS, EXIT_INVALID, EXIT_UNKNOWN


def testcase(run: dict[str, Any]) -> ET.Element:
    """`run`: label, workload, exit_code, duration_s, path, summary (one line), explanation."""
    case = ET.Element("testcase", {
        "classname": f"zkchaos.{run.get('workload') or 'test'}",
        "name": run["label"],
        "time": f"{float(run.get('duration_s') or 0):.3f}",
    })
    code = run["exit_code"]
    detail = run.get("explanation") or ""
    if code == EXIT_INVALID:
        ET.SubElement(case, "failure", {"message": run.get("summary") or detail, "type": "invalid"}).text = detail
    elif code == EXIT_HARNESS:
        ET.SubElement(case, "error", {"message": run.get("summary") or "the harness failed", "type": "harness"}).text = detail
    elif code == EXIT_UNKNOWN:
        ET.SubElement(case, "skipped", {"message": f"unknown: {run.get('summary') or detail}"})
    ET.SubElement(case, "system-out").text = str(run.get("path") or "")
    return case


def write_junit(path: Path, runs: Iterable[dict[str, Any]], suite: str = "zkchaos") -> None:
    runs = list(runs)
    cases = [testcase(r) for r in runs]
    attrs = {
        "name": suite,
        "tests": str(len(runs)),
        "failures": str(sum(r["exit_code"] == EXIT_INVALID for r in runs)),
        "errors": str(sum(r["exit_code"] == EXIT_HARNESS for r in runs)),
        "skipped": str(sum(r["exit_code"] == EXIT_UNKNOWN for r in runs)),
        "time": f"{sum(float(r.get('duration_s') or 0) for r in runs):.3f}",
    }
    root = ET.Element("testsuites", attrs)
    suite_el = ET.SubElement(root, "testsuite", attrs)
    suite_el.extend(cases)
    ET.indent(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
