"""Linearizability search: Wing & Gong's tree search with Lowe's just-in-time linearization and
memoization of (linearized set, model state), as used by P-compositional checkers.

Required ops (those that completed) are laid out as a time-ordered list of call and return
entries. The search repeatedly scans that list from its head: at a call it tries to linearize that
op (the model must allow it, and the configuration it leads to must be new); at the first return
of an op not yet linearized the window closes. Refinements that matter for histories with unknown
outcomes:

- Optional (info) ops never force anything: they are kept out of the list and tried only after
  every required op in the window, so valid histories rarely touch them. The search succeeds as
  soon as every required op is linearized.
- Optional ops that the model cannot tell apart (same signature, e.g. two timed-out writes of the
  same value) are interchangeable once both have been invoked: only the earliest unused one of a
  group is ever tried.
- A configuration is (required set, state, optional set). One whose optional set is a superset of
  that of a configuration already seen with the same required set and state is pruned: an optional
  op is never forced, so it can do nothing the other could not. Without this, k timed-out writes
  multiply the configurations by up to 2^k.
- Pure ops (reads) do not change the state: when one can be linearized, doing so now is never
  worse than later, so the search does not branch on them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Hashable, Sequence

from .history import INF


class _NotAllowed:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NOT_ALLOWED"


NOT_ALLOWED: Any = _NotAllowed()  # what Model.step returns for an op the state does not allow


class Model:
    """A sequential specification for the search (after Porcupine's Model): `init` and `step`
    say what a correct object does; `partition` splits a history into independent parts (keys)
    and `describe_*` name states and ops in reports. Subclasses give init and step."""

    def init(self) -> Hashable:
        raise NotImplementedError

    def step(self, state: Any, op: Any) -> Any:
        """The state after `op`, or NOT_ALLOWED. States must be hashable."""
        raise NotImplementedError

    def partition(self, ops: Sequence[Any]) -> list[list[Any]]:
        return [list(ops)]

    def describe_state(self, state: Any) -> str:
        return repr(state)

    def describe_op(self, op: Any) -> str:
        return repr(op)


@dataclass(slots=True)
class SearchResult:
    valid: bool | str  # True, False or "unknown"
    order: list[int]  # success: a linearization (op positions); failure: the longest prefix found
    blocked: int | None = None  # position of the op the search could not get past
    blocked_states: list[Any] = field(default_factory=list)  # model states seen when it blocked
    states: int = 0
    steps: int = 0
    reason: str = ""


def wgl_search(
    ops: Sequence[Any],
    model: Model,
    *,
    calls: Sequence[float],
    rets: Sequence[float],
    optional: Sequence[bool],
    pure: Sequence[bool],
    signature: Sequence[Hashable] | None = None,
    deadline: float | None = None,
    max_states: int | None = None,
) -> SearchResult:
    """Search for a linearization of `ops` under `model`. `rets[i]` is ignored for optional ops;
    `signature[i]` groups optional ops the model treats alike (default: each op alone)."""
    step = model.step
    n = len(ops)
    req_ids = [i for i in range(n) if not optional[i]]
    opt_ids = sorted((i for i in range(n) if optional[i]), key=lambda i: calls[i])
    # the list of required entries: 2i is op i's call, 2i+1 its return
    head = 2 * n
    nxt = [-1] * (2 * n + 1)
    prv = [-1] * (2 * n + 1)
    prev = head
    for _, _, e in sorted([(calls[i], 0, 2 * i) for i in req_ids] + [(rets[i], 1, 2 * i + 1) for i in req_ids]):
        nxt[prev] = e
        prv[e] = prev
        prev = e
    # optional groups: members are used in call order, so the unused ones form a suffix
    groups: dict[Hashable, int] = {}
    group: list[int] = []  # optional op (by position in opt_ids) -> its group
    rank: list[int] = []  # -> how many members of its group were invoked before it
    sizes: list[int] = []
    for i in opt_ids:
        g = groups.setdefault(signature[i] if signature is not None else ("op", i), len(groups))
        if g == len(sizes):
            sizes.append(0)
        group.append(g)
        rank.append(sizes[g])
        sizes[g] += 1
    used_in_group = [0] * len(groups)

    bits = [1 << i for i in range(n)]
    cache: dict[tuple[int, Any], list[int]] = {}
    states = steps = 0
    stack: list[tuple] = []  # (kind, where, state, req, opt, window) before the step
    path: list[int] = []
    state, req, opt = model.init(), 0, 0
    best_ret, best_op, best_order, best_states = -INF, None, [], []
    entry, k, window = nxt[head], -1, INF  # k >= 0: scanning optional ops from k

    def unknown(reason: str) -> SearchResult:
        return SearchResult("unknown", best_order, best_op, best_states, states, steps, reason)

    while True:
        steps += 1
        if steps & 63 == 0 and deadline is not None and time.perf_counter() > deadline:
            return unknown("time budget exhausted during the linearizability search")
        if k < 0 and entry == -1 and nxt[head] == -1:
            return SearchResult(True, path[:], states=states, steps=steps)
        kind = where = i = None
        if k < 0 and entry != -1 and not entry & 1:
            kind, where, i = 0, entry, entry >> 1
        elif k < 0:
            # the window closes at this return (or the list's end): now the optional ops
            window = rets[entry >> 1] if entry != -1 else INF
            blocker = entry >> 1 if entry != -1 else None
            if blocker is not None and rets[blocker] > best_ret:
                best_ret, best_op, best_order, best_states = rets[blocker], blocker, path[:], [state]
            elif blocker is not None and blocker == best_op and len(best_states) < 16 and state not in best_states:
                best_states.append(state)
            k = 0
        if kind is None:
            while k < len(opt_ids) and calls[opt_ids[k]] < window and (
                    bits[opt_ids[k]] & opt or rank[k] != used_in_group[group[k]]):
                k += 1
            if k < len(opt_ids) and calls[opt_ids[k]] < window:
                kind, where, i = 1, k, opt_ids[k]
        if kind is None:
            # nothing left to try here: backtrack
            while True:
                if not stack:
                    return SearchResult(False, best_order, best_op, best_states, states, steps,
                                        "no linearization exists")
                kind, where, state, req, opt, window = stack.pop()
                path.pop()
                if kind == 1:
                    used_in_group[group[where]] -= 1
                    k, entry = where + 1, -1
                    break
                _unlift(where, nxt, prv)
                if not pure[where >> 1]:
                    entry, k = nxt[where], -1
                    break
            continue
        new = step(state, ops[i])
        fresh = False
        if new is not NOT_ALLOWED:
            new_req, new_opt = (req, opt | bits[i]) if kind == 1 else (req | bits[i], opt)
            seen = cache.get((new_req, new))
            if seen is None:
                cache[(new_req, new)] = [new_opt]
                fresh = True
            elif not any(s | new_opt == new_opt for s in seen):
                seen.append(new_opt)
                fresh = True
        if fresh:
            states += 1
            if max_states is not None and states > max_states:
                return unknown(f"state budget exhausted ({max_states} configurations)")
            stack.append((kind, where, state, req, opt, window))
            path.append(i)
            state, req, opt = new, new_req, new_opt
            if kind == 1:
                used_in_group[group[where]] += 1
            else:
                _lift(where, nxt, prv)
            entry, k = nxt[head], -1
        elif kind == 0 and pure[i] and new is not NOT_ALLOWED:
            # a pure op leading to a dead configuration: this configuration is dead too
            entry, k = -1, len(opt_ids)
            window = -INF
        elif kind == 0:
            entry = nxt[entry]
        else:
            k += 1


def _lift(e: int, nxt: list[int], prv: list[int]) -> None:
    """Take a call entry and its return out of the list (dancing links)."""
    for x in (e, e | 1):
        p, q = prv[x], nxt[x]
        nxt[p] = q
        if q != -1:
            prv[q] = p


def _unlift(e: int, nxt: list[int], prv: list[int]) -> None:
    """Put them back, in the reverse order of lifting."""
    for x in (e | 1, e):
        p, q = prv[x], nxt[x]
        nxt[p] = x
        if q != -1:
            prv[q] = x
