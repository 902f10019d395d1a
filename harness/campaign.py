"""Campaigns: many tests in a row (`zkchaos test-all`), from a matrix on the command line or a
campaign file, with one summary, one exit code and JUnit XML for CI.

A campaign file (TOML):

    [defaults]              # any `zkchaos test` option, named with underscores
    time_limit = 20
    local_nodes = 3

    [[tests]]               # one test (`count` repeats it, with seeds seed, seed+1, ...)
    workload = "register"
    nemesis = ["partition", "kill"]

    [[matrix]]              # every combination of the listed values
    workload = ["set", "counter"]
    nemesis = [["pause"], ["packet"]]
    db = ["zkchaos", "zookeeper"]

Every entry is checked against the options `zkchaos test` accepts before anything starts; a bad
one is one line naming the file and the entry. The exit code: 1 if any run was invalid, else 3 if
the harness failed on any, else 2 if any verdict was unknown, else 0.
"""

from __future__ import annotations

import itertools
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import click

from .exits import EXIT_HARNESS, EXIT_INVALID, EXIT_UNKNOWN, EXIT_VALID

ENTRY_KEYS = {"count"}  # keys of an entry that are not test options


class CampaignError(ValueError):
    """A campaign that cannot run; one line naming the file and the entry."""


@dataclass(frozen=True)
class PlannedTest:
    label: str
    params: dict[str, Any]  # the test command's parameters, converted and complete


def campaign_exit(codes: Iterable[int]) -> int:
    codes = set(codes)
    for code in (EXIT_INVALID, EXIT_HARNESS, EXIT_UNKNOWN):
        if code in codes:
            return code
    return EXIT_VALID


class Planner:
    """Turns raw option values (from TOML or --set) into the test command's parameters."""

    def __init__(self, command: click.Command) -> None:
        self.command = command
        self.params = {p.name: p for p in command.params if p.name}
        self.ctx = click.Context(command, info_name="test")

    def defaults(self) -> dict[str, Any]:
        """Every parameter as `zkchaos test` with no options would have it."""
        return dict(self.command.make_context("test", [], resilient_parsing=False).params)

    def convert(self, where: str, key: str, raw: Any) -> Any:
        param = self.params.get(key)
        if param is None:
            raise CampaignError(f"{where}: unknown option {key!r} (a `zkchaos test` option, with underscores)")
        try:
            if param.callback is not None:  # --nemesis, --nemesis-interval, --nemesis-targets take text
                text = ",".join(map(str, raw)) if isinstance(raw, (list, tuple)) else str(raw)
                return param.callback(self.ctx, param, text)
            if getattr(param, "multiple", False) and not isinstance(raw, (list, tuple)):
                raw = [raw]
            value = param.type_cast_value(self.ctx, raw)
            if key == "time_limit" and value <= 0:
                raise click.BadParameter("must be above 0")
            return value
        except click.BadParameter as e:
            raise CampaignError(f"{where}: {key} = {raw!r}: {e.message}") from None

    def plan(self, where: str, values: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
        params = dict(base)
        for key, raw in values.items():
            if key not in ENTRY_KEYS:
                params[key] = self.convert(where, key, raw)
        return params


def label_of(params: dict[str, Any]) -> str:
    nemeses = "+".join(params.get("nemesis") or []) or "none"
    return f"{params.get('db')} {params.get('workload')} {nemeses} seed={params.get('seed')}"


def _repeat(params: dict[str, Any], count: int) -> list[PlannedTest]:
    out = []
    for i in range(count):
        p = dict(params)
        if p.get("seed") is not None:
            p["seed"] = int(p["seed"]) + i
        out.append(PlannedTest(label_of(p), p))
    return out


def _count(where: str, entry: dict) -> int:
    count = entry.get("count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise CampaignError(f"{where}: count = {count!r}: must be a whole number of at least 1")
    return count


def from_file(path: Path, planner: Planner, overrides: dict[str, Any]) -> list[PlannedTest]:
    """The tests of a campaign file; `overrides` (from --set) apply to every one."""
    try:
        doc = tomllib.loads(path.read_text())
    except OSError as e:
        raise CampaignError(f"{path}: cannot read it ({e.strerror})") from None
    except tomllib.TOMLDecodeError as e:
        raise CampaignError(f"{path}: not valid TOML ({e})") from None
    unknown = set(doc) - {"defaults", "tests", "matrix"}
    if unknown:
        raise CampaignError(f"{path}: unknown table {sorted(unknown)[0]!r} (use defaults, tests, matrix)")
    base = planner.plan(f"{path}: [defaults]", doc.get("defaults", {}), planner.defaults())
    tests: list[PlannedTest] = []
    for i, entry in enumerate(doc.get("tests", [])):
        where = f"{path}: tests[{i}]"
        tests += _repeat(planner.plan(where, {**entry, **overrides}, base), _count(where, entry))
    for i, entry in enumerate(doc.get("matrix", [])):
        where = f"{path}: matrix[{i}]"
        axes = {k: v if isinstance(v, list) else [v] for k, v in entry.items() if k not in ENTRY_KEYS}
        for combo in itertools.product(*axes.values()):
            values = {**dict(zip(axes, combo)), **overrides}
            tests += _repeat(planner.plan(where, values, base), _count(where, entry))
    if not tests:
        raise CampaignError(f"{path}: no tests (add [[tests]] or [[matrix]] entries)")
    return tests


def from_matrix(planner: Planner, workloads: list[str], nemeses: list[str], dbs: list[str], count: int,
                overrides: dict[str, Any]) -> list[PlannedTest]:
    """Every workload x nemesis mix x DB given on the command line."""
    base = planner.plan("--set", overrides, planner.defaults())
    tests = []
    for workload, mix, db in itertools.product(workloads, nemeses, dbs):
        values = {"workload": workload, "nemesis": mix, "db": db}
        tests += _repeat(planner.plan("test-all", values, base), count)
    return tests
