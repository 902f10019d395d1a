"""Path rules of ZooKeeper's PathUtils.validatePath."""

from __future__ import annotations

import re

from .protocol.constants import Err, ZkError

# \u0000-\u001f, \u007f-\u009f, \ud800-\uf8ff (surrogates and private use), \ufff0-\uffff,
# and everything beyond the BMP: Java sees those as surrogate pairs, which it rejects.
_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\uf8ff\ufff0-\U0010ffff]")


def path_error(path: str) -> str | None:
    """Why `path` is not a valid znode path, or None when it is."""
    if not path:
        return "path must not be empty"
    if path[0] != "/":
        return "path must start with /"
    if len(path) == 1:
        return None
    if path[-1] == "/":
        return "path must not end with /"
    m = _FORBIDDEN.search(path)
    if m:
        return f"invalid character {m.group()!r} at {m.start()}"
    for segment in path[1:].split("/"):
        if segment == "":
            return "empty path segment"
        if segment in (".", ".."):
            return "relative path segment"
    return None


def validate(path: str) -> None:
    why = path_error(path)
    if why is not None:
        raise ZkError(Err.BADARGUMENTS, f"{why}: {path!r}")
