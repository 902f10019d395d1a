"""Campaigns without running them: files and matrices become tests, every bad entry is one line
naming the file and the entry, the exit code follows the worst verdict, JUnit XML is well formed."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.campaign import CampaignError, Planner, campaign_exit, from_file, from_matrix
from harness.testcli import test_command as zkchaos_test_command
from reports.junit import write_junit


@pytest.fixture(scope="module")
def planner() -> Planner:
    return Planner(zkchaos_test_command)


def campaign(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


def test_tests_and_matrices_expand_with_defaults(tmp_path: Path, planner: Planner) -> None:
    path = campaign(tmp_path, """
[defaults]
time_limit = 12
seed = 5
[[tests]]
workload = "register"
nemesis = ["partition", "kill"]
count = 2
[[matrix]]
workload = ["set", "counter"]
nemesis = [["pause"], ["clock", "disk"]]
db = "zookeeper"
""")
    tests = from_file(path, planner, {"rate": 33})
    assert len(tests) == 2 + 4
    first, second = tests[0].params, tests[1].params
    assert first["nemesis"] == ["partition", "kill"] and first["time_limit"] == 12.0 and first["rate"] == 33.0
    assert (first["seed"], second["seed"]) == (5, 6)  # repeats get the next seeds
    matrix = {(t.params["workload"], tuple(t.params["nemesis"]), t.params["db"]) for t in tests[2:]}
    assert matrix == {(w, n, "zookeeper") for w in ("set", "counter") for n in (("pause",), ("clock", "disk"))}
    assert tests[0].params["nemesis_interval"] == (5.0, 15.0)  # what `zkchaos test` defaults to


def test_the_shipped_campaigns_are_valid(planner: Planner) -> None:
    repo = Path(__file__).resolve().parents[2]
    smoke = from_file(repo / "campaigns/smoke.toml", planner, {})
    nightly = from_file(repo / "campaigns/nightly.toml", planner, {})
    assert {t.params["workload"] for t in smoke} >= {"register", "set", "unique-ids", "counter", "queue", "bank"}
    import nemesis
    assert set(nemesis.names()) <= {f for t in smoke for f in t.params["nemesis"]}, "a family the smoke misses"
    assert {t.params["db"] for t in nightly} == {"zkchaos", "zookeeper"}


@pytest.mark.parametrize("text, message", [
    ('[[tests]]\nnemsis = ["kill"]\n', "c.toml: tests[0]: unknown option 'nemsis'"),
    ('[[tests]]\ntime_limit = 0\n', "c.toml: tests[0]: time_limit = 0: 0.0 is not in the range"),
    ('[[tests]]\nworkload = "elections"\n', "c.toml: tests[0]: workload = 'elections'"),
    ('[[tests]]\nnemesis = "kill,flood"\n', "c.toml: tests[0]: nemesis = 'kill,flood': unknown nemesis flood"),
    ('[[matrix]]\ndb = ["zkchaos", "etcd"]\n', "c.toml: matrix[0]: db = 'etcd'"),
    ('[[tests]]\ncount = 0\n', "c.toml: tests[0]: count = 0: must be a whole number of at least 1"),
    ('[[tests]\n', "c.toml: not valid TOML"),
    ('[testz]\n', "c.toml: unknown table 'testz'"),
    ('[defaults]\nrate = 5\n', "c.toml: no tests"),
])
def test_a_bad_campaign_is_one_line_naming_the_entry(tmp_path: Path, planner: Planner, text: str, message: str) -> None:
    with pytest.raises(CampaignError) as err:
        from_file(campaign(tmp_path, text), planner, {})
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_command_line_matrix(planner: Planner) -> None:
    tests = from_matrix(planner, ["register", "bank"], ["partition,kill", "clock"], ["zkchaos"], 2, {"seed": 1})
    assert [(t.params["workload"], t.params["nemesis"], t.params["seed"]) for t in tests][:3] == [
        ("register", ["partition", "kill"], 1), ("register", ["partition", "kill"], 2), ("register", ["clock"], 1)]
    assert len(tests) == 8


@pytest.mark.parametrize("codes, expected", [
    ([0, 0], 0), ([0, 2], 2), ([2, 3], 3), ([3, 1, 2], 1), ([], 0),
])
def test_the_campaign_exit_code_follows_the_worst_verdict(codes: list[int], expected: int) -> None:
    assert campaign_exit(codes) == expected


def test_junit_has_one_testcase_per_run(tmp_path: Path) -> None:
    runs = [
        {"label": "zkchaos register kill seed=1", "workload": "register", "exit_code": 0, "duration_s": 20.5,
         "path": "store/a/1"},
        {"label": "zkchaos bank all seed=2", "workload": "bank", "exit_code": 1, "duration_s": 31,
         "path": "store/b/2", "summary": "wrong-total: a read's total is 499 <&>", "explanation": "details"},
        {"label": "zookeeper set pause seed=3", "workload": "set", "exit_code": 3, "duration_s": 2, "path": "",
         "summary": "the harness failed before checking"},
        {"label": "zkchaos queue disk seed=4", "workload": "queue", "exit_code": 2, "duration_s": 9,
         "path": "store/d/4", "summary": "no final drain"},
    ]
    path = tmp_path / "junit.xml"
    write_junit(path, runs)
    root = ET.parse(path).getroot()
    suite = root.find("testsuite")
    assert suite.get("tests") == "4" and suite.get("failures") == "1" and suite.get("errors") == "1"
    assert suite.get("skipped") == "1"
    cases = suite.findall("testcase")
    assert [c.get("classname") for c in cases] == ["zkchaos.register", "zkchaos.bank", "zkchaos.set", "zkchaos.queue"]
    assert cases[1].find("failure").get("message") == "wrong-total: a read's total is 499 <&>"
    assert cases[1].find("system-out").text == "store/b/2"
    assert cases[2].find("error") is not None and cases[3].find("skipped") is not None
