"""multiRead (opcode 22) for kazoo: several getData answered from one state of the server.

kazoo has no multiRead, so this is the request it lacks, framed like a multi: each sub-op is a
MultiHeader (its opcode, done=false, err=-1) and a GetData body, and a done header ends the list.
The reply lists one result per path, in order: a MultiHeader of type getData followed by the
data and the Stat, or a header of type -1 followed by an error code. A multiRead is not atomic
in failing (each path answers on its own), but every path is read from the same state.
"""

from __future__ import annotations

from collections import namedtuple
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import EXCEPTIONS
from kazoo.protocol.serialization import GetData, MultiHeader, int_struct, read_buffer, stat_struct
from kazoo.protocol.states import ZnodeStat

MULTI_READ = 22
ERROR_RESULT = -1


class MultiRead(namedtuple("MultiRead", "paths")):
    """The request object kazoo's connection sends: `type`, `serialize`, `deserialize`."""

    type = MULTI_READ

    def serialize(self) -> bytearray:
        out = bytearray()
        for path in self.paths:
            out.extend(MultiHeader(GetData.type, False, -1).serialize())
            out.extend(GetData(path, False).serialize())
        out.extend(MultiHeader(-1, True, -1).serialize())
        return out

    @classmethod
    def deserialize(cls, buffer: bytes, offset: int) -> list[tuple[bytes, ZnodeStat] | Exception]:
        results: list[tuple[bytes, ZnodeStat] | Exception] = []
        header, offset = MultiHeader.deserialize(buffer, offset)
        while not header.done:
            if header.type == GetData.type:
                data, offset = read_buffer(buffer, offset)
                results.append((data, ZnodeStat._make(stat_struct.unpack_from(buffer, offset))))
                offset += stat_struct.size
            elif header.type == ERROR_RESULT:
                code = int_struct.unpack_from(buffer, offset)[0]
                offset += int_struct.size
                results.append(EXCEPTIONS[code]())
            else:
                raise ValueError(f"multiRead reply holds a result of type {header.type}")
            header, offset = MultiHeader.deserialize(buffer, offset)
        return results


def multi_read_async(zk: KazooClient, paths: list[str]) -> Any:
    """Send a multiRead of `paths`; the async result holds one (data, stat) or exception per path."""
    async_result = zk.handler.async_result()
    zk._call(MultiRead(tuple(paths)), async_result)
    return async_result
