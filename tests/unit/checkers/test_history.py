"""Pairing op records, and composing results."""

from __future__ import annotations

import math

import pytest

from harness.checkers import merge
from harness.checkers.history import HistoryError, normalise_key, pair_ops
from harness.checkers.register.ops import partition_register

from .builder import History


def test_pairs_invocations_with_completions() -> None:
    h = History().invoke(0, "write", 1, 5).invoke(1, "read", 1).ok(1, None).ok(0, zxid=9)
    ops = pair_ops(h.records)
    assert [(o.process, o.f, o.type, o.call, o.ret) for o in ops] == [(0, "write", "ok", 0, 3), (1, "read", "ok", 1, 2)]
    assert ops[0].zxid == 9 and ops[1].value == {"key": 1, "value": None}
    assert ops[0].session == ("process", 0)


def test_info_and_missing_completions_are_open_ended() -> None:
    h = History().invoke(0, "write", 1, 5).info(0).invoke(1, "write", 1, 6)
    ops = pair_ops(h.records)
    assert [o.type for o in ops] == ["info", "info"]
    assert all(math.isinf(o.ret) for o in ops)
    assert ops[1].complete is None


def test_nemesis_is_skipped_and_sessions_are_taken_from_records() -> None:
    h = History().nemesis("kill").invoke(0, "read", 1, session="abc").ok(0, 1, session="abc")
    ops = pair_ops(h.records)
    assert len(ops) == 1 and ops[0].session == "abc"


def test_records_out_of_file_order_are_sorted_by_index() -> None:
    records = History().write(0, 1, 1).read(1, 1, 1).records
    ops = pair_ops(list(reversed(records)))
    assert [o.f for o in ops] == ["write", "read"]


@pytest.mark.parametrize("records, message", [
    ([{"index": 0, "process": 0, "type": "ok", "f": "read", "value": {"key": 1, "value": 1}}], "completes nothing"),
    ([{"index": 0, "process": 0, "type": "invoke", "f": "read", "value": {"key": 1}},
      {"index": 1, "process": 0, "type": "invoke", "f": "read", "value": {"key": 1}}], "still open"),
    ([{"index": 0, "process": 0, "type": "invoke", "f": "read", "value": {"key": 1}},
      {"index": 1, "process": 0, "type": "ok", "f": "write", "value": {"key": 1}}], "was open"),
    ([{"index": 0, "process": 0, "type": "weird", "f": "read", "value": {"key": 1}}], "unknown type"),
])
def test_malformed_histories_raise(records: list[dict], message: str) -> None:
    with pytest.raises(HistoryError, match=message):
        pair_ops(records)


def test_partition_by_normalised_key() -> None:
    h = History().write(0, 1, 1).write(0, "1", 2).write(0, "a", 3).invoke(0, "sync", 1).ok(0)
    by_key, skipped = partition_register(pair_ops(h.records))
    assert sorted(map(str, by_key)) == ["1", "a"] and len(by_key[1]) == 2 and skipped == 1
    assert normalise_key("-3") == -3 and normalise_key(2.0) == 2 and normalise_key("x") == "x"


def test_merge_false_beats_unknown_beats_true() -> None:
    ok = {"valid": True, "anomalies": []}
    unknown = {"valid": "unknown", "anomalies": [], "explanation": "out of time"}
    bad = {"valid": False, "anomalies": [{"type": "stale-read"}], "explanation": "stale"}
    assert merge([ok, ok])["valid"] is True
    assert merge([ok, unknown])["valid"] == "unknown"
    assert merge([unknown, bad, ok])["valid"] is False
    merged = merge([unknown, bad])
    assert merged["anomalies"] == [{"type": "stale-read"}] and "stale" in merged["explanation"]
    assert merge([])["valid"] is True
