"""Which runs a selftest makes.

Each mutant names, by its options, the test of the campaign file (the smoke campaign by
default) that must catch it, and runs with that test's options exactly, so a caught mutant is
one the campaign itself catches. Every test used also runs once per seed against the unchanged
server: the control, which must stay valid. `--runs N` repeats everything with seeds seed,
seed+1, ...; `--time-limit` and `--seed` (and any `--set`) apply to every run.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from harness.campaign import CampaignError, PlannedTest, label_of

from .mutant import Mutant

CONTROL = "control"


@dataclass(frozen=True)
class PlannedRun:
    mutant: Mutant | None  # None: the control run of the unchanged server
    test: PlannedTest  # the campaign test, its seed set

    @property
    def name(self) -> str:
        """The test name in the store."""
        return f"mutant-{self.mutant.name}" if self.mutant else f"{CONTROL}-{self.test.params['workload']}"


def matches(params: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """Whether a test's parameters have every option the mutant names (nemeses in any order)."""
    for key, value in wanted.items():
        have = params.get(key)
        if key in ("nemesis", "nemesis_targets"):
            have, value = sorted(have or ()), sorted(value or ())
        if have != value:
            return False
    return True


def test_key(params: Mapping[str, Any]) -> str:
    """What tells campaign tests apart: all their options but the seed."""
    return json.dumps({k: v for k, v in params.items() if k != "seed"}, sort_keys=True, default=str)


def test_for(mutant: Mutant, tests: list[PlannedTest], campaign: Path) -> PlannedTest:
    found = [test for test in tests if matches(test.params, mutant.campaign)]
    if len(found) == 1:
        return found[0]
    if not found:
        raise CampaignError(f"{campaign}: no test has {dict(mutant.campaign)}, which mutant {mutant.name} "
                            "needs; add it to the campaign or change the catalogue")
    raise CampaignError(f"{campaign}: {len(found)} tests have {dict(mutant.campaign)}, which mutant "
                        f"{mutant.name} names; name more of its options in the catalogue")


def plan(mutants: list[Mutant], tests: list[PlannedTest], campaign: Path, runs: int) -> list[PlannedRun]:
    """For each test a mutant needs and each of `runs` seeds: the control, then the mutants."""
    by_test: dict[str, tuple[PlannedTest, list[Mutant]]] = {}
    for mutant in mutants:
        test = test_for(mutant, tests, campaign)
        by_test.setdefault(test_key(test.params), (test, []))[1].append(mutant)
    planned = []
    for test, users in by_test.values():
        for seed in _seeds(test.params.get("seed"), runs):
            seeded = _with_seed(test, seed)
            planned.append(PlannedRun(None, seeded))
            planned += [PlannedRun(m, seeded) for m in users]
    return planned


def _seeds(first: int | None, runs: int) -> list[int]:
    """A campaign without a seed gets one drawn here, so mutant and control share it."""
    start = first if first is not None else random.SystemRandom().randrange(2**31 - runs)
    return [start + i for i in range(runs)]


def _with_seed(test: PlannedTest, seed: int) -> PlannedTest:
    params = {**test.params, "seed": seed}
    return PlannedTest(label_of(params), params)
