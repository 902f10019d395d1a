"""The selftest's pure parts: every mutant still applies to the server and still imports, each
names a test of the smoke campaign, and the detection matrix says caught / missed / unknown
from results.json files written here by hand."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness import testcli
from harness.campaign import CampaignError, Planner, PlannedTest, from_file
from harness.exits import EXIT_HARNESS, EXIT_INVALID, EXIT_UNKNOWN, EXIT_VALID
from harness.selftest import matrix, render, verdict
from harness.selftest.catalogue import MUTANTS, SUBSETS, chosen
from harness.selftest.execute import judge
from harness.selftest.mutant import Mutant, MutantError, Patch
from harness.selftest.plan import PlannedRun, plan
from harness.selftestcli import SMOKE

LAYERS = ("leader election", "quorum commit", "synchronisation", "request validation", "sessions",
          "durability", "reads on followers", "sequential naming", "watch delivery", "clock")


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.name)
def test_every_mutant_applies_to_a_copy_and_still_imports(tmp_path: Path, mutant: Mutant) -> None:
    root = mutant.build(parent=tmp_path)
    original = (Path(__file__).resolve().parents[2] / mutant.patch.path).read_text()
    assert (root / mutant.patch.path).read_text() != original
    done = subprocess.run([sys.executable, "-c", "import zkserver.main, zkserver.quorum.shell, zkserver; "
                           "print(zkserver.__file__)"], capture_output=True, text=True, cwd=tmp_path,
                          env={"PYTHONPATH": str(root)}, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith(str(root))


def test_a_patch_that_no_longer_matches_fails_loudly(tmp_path: Path) -> None:
    (tmp_path / "f.py").write_text("x = 1\nx = 1\n")
    for old, times in (("y = 2", 0), ("x = 1", 2)):
        stale = Mutant("stale", "none", "", Patch("f.py", old, "z = 3"), {}, ())
        with pytest.raises(MutantError, match=f"occurs {times} times in f.py"):
            stale.apply(tmp_path)


def test_the_catalogue_covers_every_layer_with_unique_names() -> None:
    assert len(MUTANTS) >= 12
    assert len({m.name for m in MUTANTS}) == len(MUTANTS)
    for layer in LAYERS:
        assert any(m.layer.startswith(layer) for m in MUTANTS), layer
    assert all(m.expects and m.description for m in MUTANTS)
    assert set(SUBSETS["ci"]) <= {m.name for m in MUTANTS}


def test_every_mutant_names_a_test_of_the_smoke_campaign() -> None:
    tests = from_file(SMOKE, Planner(testcli.test_command), {})
    planned = plan(list(MUTANTS), tests, SMOKE, runs=1)
    assert {p.mutant.name for p in planned if p.mutant} == {m.name for m in MUTANTS}


def _test(workload: str, nemeses: list[str], seed: int = 1) -> PlannedTest:
    return PlannedTest(f"{workload} seed={seed}", {"workload": workload, "nemesis": nemeses, "seed": seed})


def _mutant(name: str, workload: str, nemeses: list[str], expects: tuple[str, ...] = ("lost",)) -> Mutant:
    return Mutant(name, "layer", "slip", Patch("f.py", "a", "b"), {"workload": workload, "nemesis": nemeses},
                  expects)


def test_plan_shares_one_control_per_test_and_seed() -> None:
    a, b = _mutant("a", "set", ["kill", "partition"]), _mutant("b", "set", ["partition", "kill"])
    c = _mutant("c", "queue", ["pause"])
    tests = [_test("set", ["partition", "kill"], seed=7), _test("queue", ["pause"], seed=3)]
    planned = plan([a, b, c], tests, Path("smoke.toml"), runs=2)
    assert [(p.mutant.name if p.mutant else "control", p.test.params["seed"]) for p in planned] == [
        ("control", 7), ("a", 7), ("b", 7), ("control", 8), ("a", 8), ("b", 8),
        ("control", 3), ("c", 3), ("control", 4), ("c", 4)]
    assert planned[0].name == "control-set" and planned[1].name == "mutant-a"
    with pytest.raises(CampaignError, match="mutant d needs"):
        plan([_mutant("d", "bank", ["kill"])], tests, Path("smoke.toml"), runs=1)


def _run_dir(tmp_path: Path, name: str, results: dict | None) -> Path:
    path = tmp_path / name
    path.mkdir()
    if results is not None:
        (path / "results.json").write_text(json.dumps(results))
    return path


LOST = {"type": "lost", "op": {"index": 5, "time_ns": 2_500_000_000}}
STALE = {"type": "stale", "zookeeper": "allowed", "op": {"index": 3}}


def test_caught_missed_and_unknown_from_results_files(tmp_path: Path) -> None:
    run = PlannedRun(_mutant("m", "set", ["kill"], expects=("lost", "duplicated")), _test("set", ["kill"]))
    invalid = {"valid": False, "anomalies": [STALE], "set": {"valid": False, "anomalies": [STALE, LOST]}}
    times = {0: 500_000_000, 3: 1_000_000_000}  # the workload's first op at 0.5 s
    caught = judge(run, EXIT_INVALID, _run_dir(tmp_path, "caught", invalid), times, 30.0)
    assert caught.status == verdict.CAUGHT and caught.kinds == ["lost", "stale"]
    assert caught.first_anomaly_s == 2.0  # the expected kind's op, not the earlier allowed one
    other = {"valid": False, "anomalies": [STALE]}
    assert judge(run, EXIT_INVALID, _run_dir(tmp_path, "other", other), {}, 1).status == verdict.UNKNOWN
    valid = _run_dir(tmp_path, "valid", {"valid": True, "anomalies": [STALE]})
    assert judge(run, EXIT_VALID, valid, {}, 1).status == verdict.MISSED
    undecided = _run_dir(tmp_path, "unknown", {"valid": "unknown"})
    assert judge(run, EXIT_UNKNOWN, undecided, {}, 1).status == verdict.UNKNOWN
    crashed = judge(run, EXIT_HARNESS, None, {}, 1)
    assert crashed.status == verdict.UNKNOWN and crashed.kinds == [] and crashed.first_anomaly_s is None
    control = PlannedRun(None, _test("set", ["kill"]))
    assert judge(control, EXIT_VALID, valid, {}, 1).status == verdict.VALID
    flagged = judge(control, EXIT_INVALID, _run_dir(tmp_path, "flagged", other), times, 1)
    assert flagged.status == verdict.INVALID and flagged.first_anomaly_s == 0.5


def test_the_matrix_combines_runs_and_decides_the_exit_code(tmp_path: Path) -> None:
    m1, m2 = _mutant("m1", "set", ["kill"]), _mutant("m2", "set", ["kill"])
    caught = _run_dir(tmp_path, "caught", {"valid": False, "anomalies": [LOST]})
    valid = _run_dir(tmp_path, "valid", {"valid": True})
    outcomes = []
    for seed in (1, 2):
        test = _test("set", ["kill"], seed)
        outcomes += [judge(PlannedRun(None, test), EXIT_VALID, valid, {}, 1),
                     judge(PlannedRun(m1, test), EXIT_INVALID, caught, {}, 1)]
        outcomes.append(judge(PlannedRun(m2, test), *((EXIT_INVALID, caught) if seed == 1 else (EXIT_VALID, valid)), {}, 1))
    result = matrix.build([m1, m2], outcomes, {"campaign": "smoke.toml", "runs_per_mutant": 2})
    rows = {r["name"]: r for r in result["mutants"]}
    assert rows["m1"]["status"] == verdict.CAUGHT and rows["m1"]["first_anomaly_s"] == 2.5
    assert rows["m2"]["status"] == verdict.MISSED and rows["m2"]["caught"] == "1/2"
    (control,) = result["controls"]
    assert control["status"] == verdict.VALID and len(control["runs"]) == 2 and result["exit_code"] == EXIT_INVALID
    assert matrix.build([m1], outcomes[:2] + outcomes[3:5], {"runs_per_mutant": 2})["exit_code"] == EXIT_VALID
    assert matrix.build([m1, m2], outcomes[:2], {})["exit_code"] == EXIT_UNKNOWN  # m2 never ran
    render.write_json(tmp_path / "out" / "selftest.json", result)
    render.write_html(tmp_path / "out" / "selftest.html", result)
    assert json.loads((tmp_path / "out" / "selftest.json").read_text())["mutants"][1]["status"] == "missed"
    page = (tmp_path / "out" / "selftest.html").read_text()
    assert "m2" in page and 'href="../caught/report.html"' in page
    cases = matrix.junit_cases(result)
    assert [c["exit_code"] for c in cases] == [EXIT_VALID, EXIT_INVALID, EXIT_VALID]


def test_a_catch_counts_only_beside_a_valid_control_and_every_run_asked_for(tmp_path: Path) -> None:
    m = _mutant("m", "set", ["kill"])
    caught = _run_dir(tmp_path, "caught", {"valid": False, "anomalies": [LOST]})
    test = _test("set", ["kill"])
    broken_control = judge(PlannedRun(None, test), EXIT_INVALID, caught, {}, 1)
    result = matrix.build([m], [broken_control, judge(PlannedRun(m, test), EXIT_INVALID, caught, {}, 1)], {})
    assert result["mutants"][0]["status"] == verdict.UNKNOWN and "its control was invalid" in \
        result["mutants"][0]["runs"][0]["explanation"]
    assert result["exit_code"] == EXIT_INVALID  # the invalid control
    one_of_three = [judge(PlannedRun(None, test), EXIT_VALID, _run_dir(tmp_path, "v", {"valid": True}), {}, 1),
                    judge(PlannedRun(m, test), EXIT_INVALID, caught, {}, 1)]
    cut_short = matrix.build([m], one_of_three, {"runs_per_mutant": 3, "interrupted": True})
    assert cut_short["mutants"][0]["status"] == verdict.UNKNOWN and cut_short["mutants"][0]["caught"] == "1/3"
    assert cut_short["exit_code"] == EXIT_HARNESS


def test_an_expected_type_the_model_allows_is_no_catch(tmp_path: Path) -> None:
    run = PlannedRun(_mutant("m", "set", ["kill"], expects=("stale",)), _test("set", ["kill"]))
    allowed_only = {"valid": False, "anomalies": [STALE, LOST], "set": {"consistency": "zookeeper",
                                                                       "anomalies": [STALE, LOST]}}
    assert judge(run, EXIT_INVALID, _run_dir(tmp_path, "z", allowed_only), {}, 1).status == verdict.UNKNOWN
    linearizable = {"valid": False, "set": {"consistency": "linearizable", "anomalies": [STALE]}}
    assert judge(run, EXIT_INVALID, _run_dir(tmp_path, "l", linearizable), {}, 1).status == verdict.CAUGHT


def test_a_mutant_must_name_exactly_one_test() -> None:
    tests = [_test("register", ["packet"]), PlannedTest("register sync", {"workload": "register", "nemesis": ["packet"],
                                                                          "read_mode": "sync", "seed": 1})]
    with pytest.raises(CampaignError, match="2 tests have"):
        plan([_mutant("m", "register", ["packet"])], tests, Path("smoke.toml"), runs=1)
    picky = Mutant("p", "layer", "slip", Patch("f.py", "a", "b"),
                   {"workload": "register", "nemesis": ["packet"], "read_mode": "sync"}, ("lost",))
    (control, mutant) = plan([picky], tests, Path("smoke.toml"), runs=1)
    assert mutant.test.params["read_mode"] == "sync" and control.mutant is None


def test_subsets_and_names_choose_mutants() -> None:
    assert [m.name for m in chosen(subset="ci")] == list(SUBSETS["ci"])
    assert chosen(["all"]) == list(MUTANTS) == chosen([])
    with pytest.raises(KeyError):
        chosen(["no-such-mutant"])
    assert [m.name for m in chosen(["watch-persistent-consumed"] * 2)] == ["watch-persistent-consumed"]
