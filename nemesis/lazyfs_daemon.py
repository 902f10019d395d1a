"""The lazy filesystem's daemon, run on a node by the lazyfs family (after Jepsen's LazyFS): a
FUSE passthrough of a backing directory that keeps written-but-not-fsynced data in memory
(`lazyfs_cache`) and drops it on command, as a power loss would.

Semantics: data reaches the backing file only on fsync/fdatasync (or the `sync` command);
metadata (create, mkdir, rename, unlink, truncate, chmod, times) goes to the backing directory at
once, so after a loss a file written but never synced exists with its synced bytes only (often
none). Files named with --write-through (the harness's myid) bypass the cache: they are
configuration, not the DB's state. Kernel caching is off (direct I/O, no attribute cache), so
every read sees what this daemon holds.

Usage (standard library, mfusepy and lazyfs_cache beside this file; any python3 >= 3.9):
    python3 lazyfs_daemon.py serve BACKING MOUNTPOINT CONTROL_SOCKET [--write-through NAME]...
    python3 lazyfs_daemon.py control CONTROL_SOCKET status|lose|sync
The control socket answers one command per connection with one line: `unsynced F P`, `lost F P`
(files, 4 KiB pages) or `synced F B` (files, bytes).
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import threading
from collections import Counter
from typing import Any, Dict, Hashable, Tuple

from lazyfs_cache import PageCache

log = logging.getLogger("lazyfs")
FSNAME = "zkchaos-lazyfs"  # in /proc/mounts as `zkchaos-lazyfs:<daemon pid>`, type fuse.zkchaos-lazyfs


class FileBacking:
    """The durable bytes of one file, through a descriptor of our own."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def pread(self, offset: int, length: int) -> bytes:
        return os.pread(self.fd, length, offset)

    def pwrite(self, offset: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.pwrite(self.fd, view, offset)
            view, offset = view[n:], offset + n


class LazyFS:
    """mfusepy operations (paths relative to the mount; `fh` is the backing file's descriptor)."""

    use_ns = True

    def __init__(self, backing: str, control: str, write_through: set[str]) -> None:
        self.root = os.path.realpath(backing)
        self.control = control
        self.write_through = write_through
        self.cache = PageCache()
        self.mutex = threading.Lock()  # FUSE calls and control commands, one at a time
        self.handles: Dict[int, Tuple[Hashable, int, bool]] = {}  # fh -> (file key, open flags, write-through)
        self.backings: Dict[Hashable, FileBacking] = {}  # files with unsynced data
        self.open_count: Counter = Counter()

    def _real(self, path: str) -> str:
        return os.path.join(self.root, path.lstrip("/"))

    # --- lifecycle and control -------------------------------------------------------------

    def init(self, path: str) -> None:
        """Mounted: start answering on the control socket (the harness waits for it)."""
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if os.path.exists(self.control):
            os.unlink(self.control)
        server.bind(self.control)
        server.listen(4)
        threading.Thread(target=self._serve_control, args=(server,), daemon=True).start()
        log.info("mounted; backing %s, control %s", self.root, self.control)

    def _serve_control(self, server: socket.socket) -> None:
        while True:
            conn, _ = server.accept()
            with conn:
                command = conn.makefile().readline().strip()
                conn.sendall((self.command(command) + "\n").encode())

    def command(self, command: str) -> str:
        with self.mutex:
            if command == "status":
                return "unsynced %d %d" % self.cache.unsynced()
            if command == "lose":
                lost = self.cache.lose()
                self._close_backings(list(self.backings))
                log.warning("power loss: dropped unsynced data of %d files (%d pages)", *lost)
                return "lost %d %d" % lost
            if command == "sync":
                keys = list(self.backings)
                written = sum(self.cache.sync(key, self.backings[key]) for key in keys)
                self._close_backings(keys)
                return "synced %d %d" % (len(keys), written)
        return "error unknown command %r" % command

    def _close_backings(self, keys: list) -> None:
        for key in keys:
            os.close(self.backings.pop(key).fd)

    # --- data ----------------------------------------------------------------------------------

    def _backing(self, key: Hashable, fh: int) -> FileBacking:
        """Our own read-write descriptor of the file behind `fh` (without its O_APPEND, which
        would make pwrite ignore offsets); it also keeps the inode, and so the key, alive."""
        if key not in self.backings:
            self.backings[key] = FileBacking(os.open("/proc/self/fd/%d" % fh, os.O_RDWR))
        return self.backings[key]

    def open(self, path: str, flags: int) -> int:
        fh = os.open(self._real(path), flags)
        self._track(path, fh, flags)
        return fh

    def create(self, path: str, mode: int, flags: int) -> int:
        fh = os.open(self._real(path), flags | os.O_CREAT, mode)
        self._track(path, fh, flags)
        return fh

    def _track(self, path: str, fh: int, flags: int) -> None:
        st = os.fstat(fh)
        key = (st.st_dev, st.st_ino)
        with self.mutex:
            self.handles[fh] = (key, flags, os.path.basename(path) in self.write_through)
            self.open_count[key] += 1

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        key = self.handles[fh][0]
        with self.mutex:
            if key in self.backings:
                return self.cache.read(key, self.backings[key], offset, size)
        return os.pread(fh, size, offset)

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        key, flags, through = self.handles[fh]
        if through:
            return os.pwrite(fh, data, offset)
        with self.mutex:
            backing = self._backing(key, fh)
            if flags & os.O_APPEND:
                size = self.cache.cached_size(key)
                offset = backing.size() if size is None else size
            return self.cache.write(key, backing, offset, data)

    def truncate(self, path: str, length: int, fh: int | None = None) -> None:
        with self.mutex:
            if fh is None:
                os.truncate(self._real(path), length)
                st = os.stat(self._real(path))
                key: Hashable = (st.st_dev, st.st_ino)
            else:
                os.ftruncate(fh, length)
                key = self.handles[fh][0]
            self.cache.truncate(key, length)

    def fsync(self, path: str, datasync: int, fh: int) -> None:
        key = self.handles[fh][0]
        with self.mutex:
            if key in self.backings:
                self.cache.sync(key, self.backings[key])
                self._close_backings([key])

    def flush(self, path: str, fh: int) -> None:
        """close() is no sync: unsynced data stays unsynced."""

    def release(self, path: str, fh: int) -> None:
        with self.mutex:
            key = self.handles.pop(fh)[0]
            self.open_count[key] -= 1
            os.close(fh)
            self._forget_if_gone(key)

    # --- metadata: straight to the backing directory ---------------------------------------

    def getattr(self, path: str, fh: int | None = None) -> Dict[str, Any]:
        st = os.fstat(fh) if fh is not None else os.lstat(self._real(path))
        attrs = {k: getattr(st, k) for k in ("st_mode", "st_nlink", "st_uid", "st_gid", "st_size", "st_ino",
                                             "st_atime_ns", "st_mtime_ns", "st_ctime_ns")}
        for k in ("st_atime", "st_mtime", "st_ctime"):
            attrs[k] = attrs.pop(k + "_ns")
        with self.mutex:
            cached = self.cache.cached_size((st.st_dev, st.st_ino))
        if cached is not None:
            attrs["st_size"] = cached
        return attrs

    def access(self, path: str, amode: int) -> None:
        if not os.access(self._real(path), amode):
            raise OSError(13, "Permission denied")

    def readdir(self, path: str, fh: int) -> list:
        return [".", "..", *os.listdir(self._real(path))]

    def mkdir(self, path: str, mode: int) -> None:
        os.mkdir(self._real(path), mode)

    def rmdir(self, path: str) -> None:
        os.rmdir(self._real(path))

    def unlink(self, path: str) -> None:
        st = os.lstat(self._real(path))
        os.unlink(self._real(path))
        with self.mutex:
            self._forget_if_gone((st.st_dev, st.st_ino))

    def rename(self, old: str, new: str) -> None:
        try:
            replaced = os.lstat(self._real(new))
        except FileNotFoundError:
            replaced = None
        os.rename(self._real(old), self._real(new))
        if replaced is not None:
            with self.mutex:
                self._forget_if_gone((replaced.st_dev, replaced.st_ino))

    def _forget_if_gone(self, key: Hashable) -> None:
        """A file with no name and no open handle can never be read again: free its pages."""
        backing = self.backings.get(key)
        if backing is not None and self.open_count[key] == 0 and os.fstat(backing.fd).st_nlink == 0:
            self.cache.forget(key)
            self._close_backings([key])

    def chmod(self, path: str, mode: int) -> None:
        os.chmod(self._real(path), mode)

    def utimens(self, path: str, times: Tuple[int, int] | None = None) -> None:
        if times is None:
            os.utime(self._real(path))
        else:
            os.utime(self._real(path), ns=times)

    def statfs(self, path: str) -> Dict[str, int]:
        sv = os.statvfs(self._real(path))
        return {k: getattr(sv, k) for k in ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail",
                                            "f_files", "f_ffree", "f_favail", "f_flag", "f_namemax")}

    def fsyncdir(self, path: str, datasync: int, fh: int) -> None:
        """Metadata is durable at once: nothing to do."""


def serve(args: argparse.Namespace) -> None:
    import mfusepy  # loads libfuse: only the daemon needs it, not the control client

    fs = LazyFS(args.backing, args.control, set(args.write_through))
    mfusepy.FUSE(fs, args.mountpoint, foreground=True, nothreads=True, fsname="%s:%d" % (FSNAME, os.getpid()),
                 subtype=FSNAME, direct_io=True, attr_timeout=0, entry_timeout=0, negative_timeout=0)


def control(args: argparse.Namespace) -> int:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(60)
        s.connect(args.control)
        s.sendall((args.command + "\n").encode())
        reply = s.makefile().readline().strip()
    print(reply)
    return 1 if reply.startswith("error") else 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="lazyfs_daemon")
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("serve")
    p.add_argument("backing")
    p.add_argument("mountpoint")
    p.add_argument("control")
    p.add_argument("--write-through", action="append", default=[])
    c = sub.add_parser("control")
    c.add_argument("control")
    c.add_argument("command", choices=("status", "lose", "sync"))
    args = parser.parse_args(argv)
    if args.what == "control":
        return control(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    serve(args)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
