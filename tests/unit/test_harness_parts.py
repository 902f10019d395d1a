"""The harness's pure parts: partition grudges, the history format, the op generator."""

from __future__ import annotations

import json
import random
import re
import sys

import pytest

from harness.checkers.history import pair_ops
from harness import history as history_module
from harness.history import HistoryRecorder, read_history
from harness.workload import Completion
from workloads.register import RegisterGenerator


def test_history_records_and_reads_back(tmp_path):
    path = tmp_path / "history.jsonl"
    h = HistoryRecorder(path)
    inv = h.invoke(0, "n1", "write", {"key": 1, "value": 5})
    h.complete(inv, "ok", zxid=42, session="0x1")
    inv2 = h.invoke(1, "n2", "read", {"key": 1, "value": None})
    h.complete(inv2, "info", error="timeout")
    h.close()
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [x["index"] for x in lines] == [0, 1, 2, 3]
    assert set(lines[0]) == {"index", "time_ns", "process", "node", "type", "f", "value", "error", "zxid", "session"}
    assert lines[1]["process"] == 0 and lines[1]["f"] == "write" and lines[1]["zxid"] == 42
    records = read_history(path)
    assert [(op.call, op.ret) for op in pair_ops(records)] == [(0, 1), (2, float("inf"))]


def test_history_from_another_tool_may_omit_optional_fields(tmp_path):
    path = tmp_path / "h.jsonl"
    path.write_text('{"index":0,"time_ns":1,"process":0,"type":"invoke","f":"read","value":{"key":0,"value":null}}\n')
    rec = read_history(path)[0]
    assert rec["zxid"] is None and rec["session"] is None and rec["node"] is None


def test_bad_history_lines_are_reported_with_their_line(tmp_path):
    path = tmp_path / "h.jsonl"
    path.write_text('{"index":0,"time_ns":0,"process":0,"f":"read","type":"invoke"}\nnot json\n')
    with pytest.raises(ValueError, match="h.jsonl:2"):
        read_history(path)
    path.write_text('{"index":0,"type":"invoke"}\n')
    with pytest.raises(ValueError, match="h.jsonl:1: missing time_ns, process, f"):
        read_history(path)


@pytest.mark.parametrize("line, error", [
    ("[1, 2]", "expected an operation object, got list"),
    ('{"index":0,"time_ns":0,"process":0,"f":"read","type":"wat"}', "type must be invoke|ok|fail|info, got 'wat'"),
    ('{"index":0,"time_ns":0,"process":0,"f":"read","type":["ok"]}', "type must be invoke|ok|fail|info"),
    ('{"index":0.5,"time_ns":0,"process":0,"f":"read","type":"ok"}', "index and time_ns must be integers"),
    ('{"index":0,"time_ns":true,"process":0,"f":"read","type":"ok"}', "index and time_ns must be integers"),
    ('{"index":0,"time_ns":0,"process":0,"type":"ok","node":null,"value":1,"error":null,"zxid":null,'
     '"session":null}', "missing f"),
    ('{"index":0,"time_ns":0,"process":0,"f":"read","type":"ok"} {"index":1}', "not a JSON object"),
])
def test_a_line_that_is_not_a_record_is_named_with_what_is_wrong(tmp_path, line, error):
    path = tmp_path / "h.jsonl"
    path.write_text('{"index":0,"time_ns":0,"process":0,"f":"read","type":"invoke"}\n\n' + line + "\n")
    with pytest.raises(ValueError, match=f"h.jsonl:3: {re.escape(error)}"):
        read_history(path)


def test_what_records_repeat_is_read_once_and_large_histories_compactly(tmp_path, monkeypatch):
    path = tmp_path / "h.jsonl"
    big = list(range(100_000, 100_040))
    flags = [1, 0] * 10 + [True, 1.0]  # equal values of other types stay what they were
    entry = {"kind": "event", "type": "created", "path": "/zkchaos/watch/k1"}
    records = [{"index": i, "time_ns": i, "process": 0, "node": "n1", "type": "invoke" if i % 2 == 0 else "ok",
                "f": "read", "value": {"elements": big, "journal": [entry], "flags": flags}, "error": None, "zxid": None,
                "session": "0x1"} for i in range(4)]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    first, second = read_history(path)[:2]
    assert first == records[0] and second == records[1]
    assert [type(x) for x in second["value"]["flags"][-2:]] == [bool, float]
    assert all(a is b for a, b in zip(first["value"]["elements"], second["value"]["elements"]))
    assert first["value"]["journal"][0]["path"] is second["value"]["journal"][0]["path"]
    assert first["session"] is second["session"]
    monkeypatch.setattr(history_module, "COMPACT_ABOVE", 0)
    compact = read_history(path)
    assert compact == records and sys.getsizeof(compact[0]) < sys.getsizeof(first)
    path.write_text("[1, 2]\n")
    with pytest.raises(ValueError, match="h.jsonl:1: expected an operation object, got list"):
        read_history(path)


def test_generator_values_never_repeat_per_key():
    gen = RegisterGenerator(3, random.Random(7))
    seen: dict[int, set[int]] = {}
    for i in range(2000):
        process = i % 4
        f, v = gen.next(process)
        if f == "read":
            assert v["value"] is None
            gen.update(process, f, v, Completion("ok", dict(v, value=max(seen.get(v["key"], {None}) - {None}, default=None))))
            continue
        new = v["value"] if f == "write" else v["to"]
        assert new not in seen.setdefault(v["key"], set())
        seen[v["key"]].add(new)
        if f == "cas":
            assert v["from"] in seen[v["key"]]
        gen.update(process, f, v, Completion("ok", v))


def test_a_cas_expects_what_its_process_last_saw():
    gen = RegisterGenerator(1, random.Random(3), mix=(0.0, 0.0, 1.0))
    assert gen.next(0) == ("read", {"key": 0, "value": None})  # nothing seen yet: read first
    gen.update(0, "read", {"key": 0, "value": None}, Completion("ok", {"key": 0, "value": 41}))
    f, v = gen.next(0)
    assert f == "cas" and v["from"] == 41
    gen.update(0, "cas", v, Completion("ok", v))
    assert gen.next(0)[1]["from"] == v["to"]  # its own successful cas is what it saw last
    assert gen.next(1)[0] == "read"  # another process knows nothing of the key
    gen.update(0, "read", {"key": 0, "value": None}, Completion("info"))  # no outcome: no news
    assert gen.next(0)[1]["from"] == v["to"]
