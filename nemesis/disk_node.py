"""The disk family's hands on a node: this file is sent to the node's python3 (>= 3.9, standard
library only) on standard input and prints one JSON document.

    python3 - list GLOB                 the files GLOB matches, by zxid, the newest two with the end of their data
    python3 - flip PATH OFFSET:MASK...  XOR the byte at each OFFSET with MASK
    python3 - cut PATH SIZE             truncate PATH to SIZE bytes

Apache ZooKeeper preallocates its logs with zeros, so the end of a file's data is the end of its
last non-zero byte, not its size; a fault aimed at "the tail" must aim there.
"""

from __future__ import annotations

import glob
import json
import os
import sys
from typing import Any, Dict, List, Optional

CHUNK = 1 << 20


def zxid_of(path: str) -> Optional[int]:
    """The zxid a log or snapshot file is named after (hex, padded or not); None for anything
    else (a snapshot still being written, a compressed one)."""
    suffix = os.path.basename(path).partition(".")[2]
    try:
        return int(suffix, 16)
    except ValueError:
        return None


def data_end(path: str) -> int:
    """The offset just past the last non-zero byte, read backwards a chunk at a time."""
    with open(path, "rb") as f:
        end = f.seek(0, os.SEEK_END)
        while end > 0:
            start = max(0, end - CHUNK)
            f.seek(start)
            kept = f.read(end - start).rstrip(b"\0")
            if kept:
                return start + len(kept)
            end = start
    return 0


def listing(pattern: str) -> List[Dict[str, Any]]:
    files = sorted((zxid_of(p), p) for p in glob.glob(pattern) if zxid_of(p) is not None)
    out: List[Dict[str, Any]] = [{"path": p, "size": os.path.getsize(p)} for _, p in files]
    for item in out[-2:]:  # a log just rolled holds only its header: the one before has the tail
        item["end"] = data_end(item["path"])
    return out


def flip(path: str, plan: List[str]) -> List[Dict[str, Any]]:
    done = []
    with open(path, "r+b") as f:
        for item in plan:
            offset, mask = (int(x) for x in item.split(":"))
            f.seek(offset)
            before = f.read(1)[0]
            f.seek(offset)
            f.write(bytes([before ^ mask]))
            done.append({"offset": offset, "before": before, "after": before ^ mask})
    return done


def cut(path: str, size: int) -> Dict[str, int]:
    before = os.path.getsize(path)
    os.truncate(path, size)
    return {"size_before": before, "size_after": size}


def main(argv: List[str]) -> Any:
    command, args = argv[0], argv[1:]
    if command == "list":
        return listing(args[0])
    if command == "flip":
        return flip(args[0], args[1:])
    if command == "cut":
        return cut(args[0], int(args[1]))
    raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])))
