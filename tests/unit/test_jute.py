"""Jute primitives: big-endian ints/longs, one-byte booleans, length-prefixed buffers and strings
where -1 means null, vectors with a count (-1 = null). Malformed input raises JuteError."""

from __future__ import annotations

import struct

import pytest

from zkserver.protocol.jute import (
    DEFAULT_MAX_BUFFER,
    JuteError,
    Reader,
    Writer,
    encode_buffer,
    encode_ustring,
)


def test_default_max_buffer_is_jute_default():
    assert DEFAULT_MAX_BUFFER == 1_048_575


@pytest.mark.parametrize("value", [0, 1, -1, 2**31 - 1, -(2**31), 0x12345678])
def test_int_round_trip_and_wire_form(value):
    raw = Writer().int(value).bytes()
    assert raw == struct.pack(">i", value)
    r = Reader(raw)
    assert r.int() == value
    assert r.remaining() == 0


@pytest.mark.parametrize("value", [0, 1, -1, 2**63 - 1, -(2**63), 0x0102030405060708])
def test_long_round_trip_and_wire_form(value):
    raw = Writer().long(value).bytes()
    assert raw == struct.pack(">q", value)
    assert Reader(raw).long() == value


def test_bool_is_one_byte():
    assert Writer().bool(True).bool(False).bytes() == b"\x01\x00"
    r = Reader(b"\x01\x00\x07")
    assert r.bool() is True
    assert r.bool() is False
    assert r.bool() is True  # DataInput.readBoolean: any non-zero byte is true


def test_buffer_round_trip():
    raw = Writer().buffer(b"hello").bytes()
    assert raw == b"\x00\x00\x00\x05hello"
    assert Reader(raw).buffer() == b"hello"


def test_empty_buffer_is_not_null():
    raw = Writer().buffer(b"").bytes()
    assert raw == b"\x00\x00\x00\x00"
    assert Reader(raw).buffer() == b""


def test_null_buffer_is_minus_one():
    raw = Writer().buffer(None).bytes()
    assert raw == b"\xff\xff\xff\xff"
    assert Reader(raw).buffer() is None
    assert encode_buffer(None) == b"\xff\xff\xff\xff"
    assert encode_buffer(b"ab") == b"\x00\x00\x00\x02ab"


def test_ustring_round_trip_utf8():
    s = "/\u00e4hm/\u65e5\u672c"
    raw = Writer().ustring(s).bytes()
    encoded = s.encode("utf-8")
    assert raw == struct.pack(">i", len(encoded)) + encoded  # byte length, not char length
    assert Reader(raw).ustring() == s
    assert encode_ustring(s) == raw


def test_null_and_empty_ustring():
    assert Writer().ustring(None).bytes() == b"\xff\xff\xff\xff"
    assert Reader(b"\xff\xff\xff\xff").ustring() is None
    assert Reader(b"\x00\x00\x00\x00").ustring() == ""


def test_strings_vector_round_trip():
    raw = Writer().strings(["a", "bc"]).bytes()
    assert raw == b"\x00\x00\x00\x02" + b"\x00\x00\x00\x01a" + b"\x00\x00\x00\x02bc"
    assert Reader(raw).vector(Reader.ustring) == ["a", "bc"]


def test_null_and_empty_vector():
    assert Writer().strings(None).bytes() == b"\xff\xff\xff\xff"
    assert Reader(b"\xff\xff\xff\xff").vector(Reader.int) is None
    assert Reader(b"\x00\x00\x00\x00").vector(Reader.int) == []


def test_mixed_record_round_trip():
    w = Writer().int(7).long(-5).bool(True).buffer(b"\x00\x01").ustring("x").strings(["p"])
    r = Reader(w.bytes())
    assert (r.int(), r.long(), r.bool(), r.buffer(), r.ustring(), r.vector(Reader.ustring)) == (
        7,
        -5,
        True,
        b"\x00\x01",
        "x",
        ["p"],
    )
    assert r.remaining() == 0


def test_reader_starts_at_offset():
    r = Reader(b"\xde\xad\xbe\xef" + struct.pack(">i", 42), 4)
    assert r.int() == 42


@pytest.mark.parametrize(
    "raw, read",
    [
        (b"", Reader.int),
        (b"\x00\x00\x00", Reader.int),
        (b"\x00" * 7, Reader.long),
        (b"", Reader.bool),
        (b"\x00\x00", Reader.buffer),  # length itself cut short
        (b"\x00\x00\x00\x05abc", Reader.buffer),  # 5 announced, 3 present
        (b"\x00\x00\x00\x05abc", Reader.ustring),
        (b"\x00\x00\x00\x03" + b"\x00\x00\x00\x01", lambda r: r.vector(Reader.int)),  # 3 items, 1 present
    ],
)
def test_truncated_input_raises(raw, read):
    with pytest.raises(JuteError):
        read(Reader(raw))


@pytest.mark.parametrize("length", [-2, -100, -(2**31)])
def test_negative_buffer_length_rejected(length):
    with pytest.raises(JuteError):
        Reader(struct.pack(">i", length) + b"x" * 16).buffer()


@pytest.mark.parametrize("length", [-2, -(2**31)])
def test_negative_vector_count_rejected(length):
    with pytest.raises(JuteError):
        Reader(struct.pack(">i", length)).vector(Reader.int)


def test_oversize_buffer_rejected_before_reading():
    # A length above jute.maxbuffer is refused even though the bytes are not there.
    with pytest.raises(JuteError):
        Reader(struct.pack(">i", DEFAULT_MAX_BUFFER + 1)).buffer()
    with pytest.raises(JuteError):
        Reader(struct.pack(">i", 2**31 - 1)).buffer()


def test_max_buffer_is_configurable_and_inclusive():
    payload = b"x" * 16
    assert Reader(struct.pack(">i", 16) + payload, max_buffer=16).buffer() == payload
    with pytest.raises(JuteError):
        Reader(struct.pack(">i", 17) + payload + b"y", max_buffer=16).buffer()


def test_oversize_vector_rejected():
    with pytest.raises(JuteError):
        Reader(struct.pack(">i", 2**31 - 1)).vector(Reader.int)


def test_invalid_utf8_is_replaced_as_java_decodes_it():
    # ZooKeeper decodes with Java's UTF-8 decoder, which substitutes U+FFFD; paths holding it
    # then fail validation (BADARGUMENTS) instead of the request failing to decode.
    assert Reader(b"\x00\x00\x00\x02\xff\xfe").ustring() == "\ufffd\ufffd"


def test_strings_beyond_the_bmp_are_written_as_surrogates():
    from zkserver.protocol.jute import java_utf8

    assert java_utf8("/d/\U0001F600") == b"/d/\xed\xa0\xbd\xed\xb8\x80"
    assert java_utf8("/\u00e9") == "/\u00e9".encode()
