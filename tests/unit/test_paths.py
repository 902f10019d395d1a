"""PathUtils.validatePath, as the protocol doc states it. Java checks UTF-16 code units, so the
forbidden ranges apply to Java chars (a character outside the BMP is a surrogate pair)."""

from __future__ import annotations

import pytest

from zkserver.paths import path_error, validate
from zkserver.protocol.constants import Err, ZkError

VALID = [
    "/",
    "/a",
    "/a/b/c",
    "/zookeeper",
    "/a.b",
    "/.a",
    "/a.",
    "/...",
    "/a/..b",
    "/a/b..",
    "/with space",
    "/\u00e4hm",
    "/\u65e5\u672c\u8a9e",
    "/~",  # \u007e, just below the \u007f range
    "/\u00a0",  # just above \u009f
    "/\uf900",  # just above \uf8ff
    "/\uffef",  # just below \ufff0
    "/a-b_c:d",
]

INVALID = [
    "",
    "a",
    "a/b",
    "/a/",
    "//",
    "//a",
    "/a//b",
    "/.",
    "/..",
    "/a/.",
    "/a/..",
    "/./a",
    "/../a",
    "/a/./b",
    "/a/../b",
    "/b\u0000",
    "/\u0000",
    "/b\u0001",
    "/b\u001e",
    "/b\u001f",
    "/b\n",
    "/b\u007f",
    "/b\u0080",
    "/b\u009f",
    "/b\ud800",
    "/b\udfff",
    "/b\ue000",  # private use
    "/b\uf8ff",
    "/b\ufff0",
    "/b\ufffe",
    "/b\uffff",
]


@pytest.mark.parametrize("path", VALID)
def test_valid(path):
    assert path_error(path) is None
    validate(path)


@pytest.mark.parametrize("path", INVALID)
def test_invalid_is_bad_arguments(path):
    assert path_error(path) is not None
    with pytest.raises(ZkError) as e:
        validate(path)
    assert e.value.code == Err.BADARGUMENTS


@pytest.mark.parametrize("path", ["/a\U0001F600", "/\U00010000", "/x/\U0010FFFF"])
def test_characters_outside_the_bmp_are_invalid(path):
    # Java strings hold these as surrogate pairs (\ud800-\udfff), which validatePath rejects;
    # ZooKeeper therefore refuses e.g. an emoji in a path with BADARGUMENTS.
    with pytest.raises(ZkError) as e:
        validate(path)
    assert e.value.code == Err.BADARGUMENTS
