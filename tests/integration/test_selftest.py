"""`zkchaos selftest` end to end: the cheapest reliable mutant (persistent watches consumed like
one-shot ones: the watch workload's persistent watcher misses every change after the first, with
or without faults) is caught on a local namespace cluster, its control run of the unchanged
server is valid, and the matrix lands in the store as JSON, HTML and JUnit XML."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.conftest import require_netns
from tests.runs import zkchaos

pytestmark = pytest.mark.integration


def test_a_mutant_is_caught_and_its_control_stays_valid(tmp_path: Path) -> None:
    require_netns()
    store, junit = tmp_path / "store", tmp_path / "selftest.xml"
    done = zkchaos("selftest", "--mutant", "watch-persistent-consumed", "--time-limit", "4",
                   "--set", "local_prefix=zkm", "--set", "local_subnet=10.66.61.0/24", "--store", str(store),
                   "--junit", str(junit), timeout=240)
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout[-4000:]}\n{done.stderr[-2000:]}"
    matrix = json.loads((store / "selftest.json").read_text())
    (mutant,) = matrix["mutants"]
    assert mutant["name"] == "watch-persistent-consumed" and mutant["status"] == "caught"
    assert mutant["test"].startswith("watch x") and 0 <= mutant["first_anomaly_s"] < 4
    (run,) = mutant["runs"]
    assert run["exit_code"] == 1 and "missed-event" in run["kinds"]
    assert (Path(run["path"]) / "report.html").exists()
    (control,) = matrix["controls"]
    assert control["status"] == "valid" and control["runs"][0]["seed"] == run["seed"]
    assert "watch-persistent-consumed" in (store / "selftest.html").read_text()
    suite = ET.parse(junit).getroot()
    assert suite.get("tests") == "2" and suite.get("failures") == "0"
