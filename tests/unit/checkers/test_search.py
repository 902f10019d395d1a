"""The search and the direct analysis against a brute-force oracle on small random histories,
and the budgets."""

from __future__ import annotations

import random
from typing import Any

import pytest

from harness.checkers.register import check_register
from harness.checkers.history import pair_ops
from harness.checkers.register.ops import partition_register
from harness.checkers.register.ops import (NOT_ALLOWED, RegOp, prune_unobserved, reduce_key_ops, register_step,
                                       values_unique)
from harness.checkers.register.linearizable import run_search
from harness.checkers.register.unique import analyse_unique
from harness.checkers.register.zookeeper import _sessional_step, analyse_key_zookeeper

from .builder import History


def random_history(rng: random.Random, unique: bool, zxids: bool = False, final: bool = False) -> list[dict]:
    """A few processes doing random ops; reads sometimes return a random earlier value and cas
    sometimes succeeds on a wrong value, so about a fifth of the histories are invalid."""
    h = History()
    written: list[Any] = [None]
    current: list[Any] = [None]
    counter = zxid = 0
    pending: dict[int, tuple] = {}
    left = rng.randint(3, 9)
    procs = rng.randint(2, 4)
    while left or pending:
        p = rng.randrange(procs)
        if p in pending:
            op = pending.pop(p)
            x = rng.random()
            if op[0] == "read":
                if x < 0.1:
                    h.info(p)
                else:
                    h.ok(p, current[0] if rng.random() > 0.3 else rng.choice(written))
            elif x < 0.15:
                h.info(p)
            elif op[0] == "write" or current[0] == op[1] or rng.random() < 0.1:
                current[0] = op[-1]
                zxid += 1
                h.ok(p, **({"zxid": zxid} if zxids else {}))
            else:
                h.fail(p)
        elif left:
            left -= 1
            counter += 1
            value = counter if unique else rng.randrange(3)
            x = rng.random()
            if x < 0.45:
                h.invoke(p, "read", 0)
                pending[p] = ("read",)
            elif x < 0.8:
                h.invoke(p, "write", 0, value)
                pending[p] = ("write", value)
            else:
                frm = rng.choice(written)
                h.invoke(p, "cas", 0, frm=frm, to=value)
                pending[p] = ("cas", frm, value)
            if x >= 0.45:
                written.append(value)
    if final:
        h.invoke(9, "read", 0, final=True).ok(9, current[0] if rng.random() > 0.3 else rng.choice(written), final=True)
    return h.records


def oracle(ops: list[RegOp], zookeeper: bool) -> bool:
    """Try every order that respects real time (and zxid order), without any pruning."""
    sessions = {s: i for i, s in enumerate(dict.fromkeys(r.session for r in ops))}
    last = {}
    for r in sorted(ops, key=lambda r: r.call):
        last[r.session] = r

    def step(state: Any, r: RegOp) -> list:
        if zookeeper:
            out = _sessional_step(frozenset([state]), (r, sessions[r.session], last[r.session] is r))
            return [] if out is NOT_ALLOWED else list(out)
        value, top = state
        z = r.op.zxid if r.kind != "r" and r.ok else None
        if z is not None and z <= top:
            return []
        nxt = register_step(value, r)
        return [] if nxt is NOT_ALLOWED else [(nxt, top if z is None else z)]

    def go(state: Any, remaining: list[RegOp]) -> bool:
        if all(not r.ok for r in remaining):
            return True
        horizon = min(r.ret for r in remaining)
        for r in remaining:
            if r.call < horizon:
                rest = [x for x in remaining if x is not r]
                if any(go(s, rest) for s in step(state, r)):
                    return True
        return False

    return go(((None,), (0,) * len(sessions), -1) if zookeeper else (None, -1), ops)


def key_ops(records: list[dict]):
    by_key, _ = partition_register(pair_ops(records))
    return reduce_key_ops(by_key.get(0, []))


@pytest.mark.parametrize("seed", range(4))
def test_direct_analysis_and_search_agree_with_the_oracle(seed: int) -> None:
    rng = random.Random(seed)
    counts = {True: 0, False: 0}
    for trial in range(250):
        unique = trial % 2 == 0
        records = random_history(rng, unique, zxids=trial % 3 == 0, final=trial % 5 == 0)
        kops = key_ops(records)
        expected = oracle(kops.ops, zookeeper=False)
        counts[expected] += 1
        kept, _ = prune_unobserved(kops.ops)
        assert run_search(kept, None, None).valid is expected, records
        if values_unique(kops):
            assert (not analyse_unique(kops).findings) is expected, records
    assert counts[True] and counts[False]  # both verdicts were exercised


@pytest.mark.parametrize("seed", range(4))
def test_zookeeper_model_agrees_with_the_oracle(seed: int) -> None:
    rng = random.Random(100 + seed)
    for trial in range(200):
        records = random_history(rng, trial % 2 == 0, zxids=trial % 3 == 0, final=trial % 4 == 0)
        kops = key_ops(records)
        assert analyse_key_zookeeper(kops).valid is oracle(kops.ops, zookeeper=True), records


def test_budget_exhausted_is_unknown_with_the_reason() -> None:
    # repeated values and many timed-out writes that could land anywhere: a hard refutation
    rng = random.Random(7)
    h = History()
    for i in range(40):
        h.invoke(100 + i, "write", 0, rng.randrange(3)).info(100 + i)
    for i in range(60):
        h.write(i % 4, 0, rng.randrange(3)).read(4 + i % 3, 0, rng.randrange(3))
    result = check_register(h.records, max_states=20)
    assert result["valid"] == "unknown"
    assert "state budget exhausted (20 configurations)" in result["explanation"]
    assert result["keys"][0]["reason"].startswith("state budget")
    result = check_register(h.records, time_limit=0)
    assert result["valid"] == "unknown" and "time budget" in result["explanation"]


def _costly_key0() -> History:
    """Key 0: 30 writes that may or may not have happened, then 40 write/read rounds over
    three values: far more configurations than a small budget allows."""
    h = History()
    for i in range(30):
        h.invoke(100 + i, "write", 0, i % 3).info(100 + i)
    for i in range(40):
        h.write(i % 3, 0, i % 3).read(3, 0, (i + 1) % 3)
    return h


def test_memory_budget_limits_states() -> None:
    h = _costly_key0()
    result = check_register(h.records, max_states=None, max_memory_mb=0.001)
    assert result["valid"] == "unknown" and "state budget" in result["explanation"]


def test_unknown_does_not_hide_a_violation_on_another_key() -> None:
    h = _costly_key0()
    h.write(0, 1, 1).write(0, 1, 2).read(1, 1, 1)
    result = check_register(h.records, max_states=10)
    assert result["keys"][0]["valid"] == "unknown"
    assert result["valid"] is False and result["failure"]["key"] == 1
