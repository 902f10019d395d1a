"""Remote control of nodes over SSH: run commands, upload and download files.

One code path for every node: local network-namespace nodes (each runs its own sshd) and real
remote hosts are both reached with paramiko, so what the tests exercise is what users run.
"""

from __future__ import annotations

import errno
import select
import shlex
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Protocol, runtime_checkable

import paramiko

DEFAULT_TIMEOUT = 60.0  # seconds; every remote command is bounded
CONNECT_TIMEOUT = 10.0
# The remote `timeout` wrapper fires a little after our local deadline so that, normally, we see
# the deadline first; it then kills the command's whole process group (TERM, KILL after grace).
REMOTE_GRACE = 0.5
REMOTE_KILL_AFTER = 2


class RemoteError(Exception):
    """A node could not be reached, or a command on it failed. The message names the node."""

    def __init__(self, message: str, *, host: str = "", command: str | None = None,
                 exit_code: int | None = None, stderr: str = "") -> None:
        super().__init__(message)
        self.host = host
        self.command = command
        self.exit_code = exit_code
        self.stderr = stderr


class RemoteTimeout(RemoteError):
    """A command did not finish in time; its channel was closed and the remote command killed."""


@dataclass(frozen=True)
class RunResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


@dataclass(frozen=True)
class NodeSpec:
    name: str
    host: str
    port: int = 22
    user: str = "root"
    key_path: str | None = None
    password: str | None = None
    strict_host_keys: bool = False

    @property
    def label(self) -> str:
        return f"{self.name} ({self.host}:{self.port})"


@runtime_checkable
class Remote(Protocol):
    """What the harness needs from a node (after Jepsen's Remote)."""

    name: str

    def run(self, cmd: str, timeout: float | None = DEFAULT_TIMEOUT, check: bool = True,
            sudo: bool = True, stdin: str | bytes | None = None) -> RunResult: ...

    def upload(self, local_path: str | Path, remote_path: str) -> None: ...

    def download(self, remote_path: str, local_path: str | Path) -> None: ...

    def close(self) -> None: ...


def _tail(text: str, lines: int = 5, chars: int = 600) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])[-chars:]


def _describe_connect_error(spec: NodeSpec, exc: BaseException) -> str:
    """One short phrase for why connecting failed; the caller prefixes the node."""
    if isinstance(exc, paramiko.AuthenticationException):
        return f"authentication failed for {spec.user}@{spec.host}"
    if isinstance(exc, paramiko.BadHostKeyException):
        return "host key does not match the known_hosts entry"
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        # paramiko wraps the per-address socket errors; report the first one.
        inner = next(iter(exc.errors.values()), None)
        return _describe_connect_error(spec, inner) if inner else "connection failed"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return f"connection timed out after {CONNECT_TIMEOUT:g}s"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host name {spec.host!r}"
    if isinstance(exc, OSError) and exc.errno is not None:
        if exc.errno == errno.EINVAL:  # what connect() says for a blackholed destination
            return "address not routable (blackhole route?)"
        return (exc.strerror or str(exc)).lower()
    if isinstance(exc, paramiko.SSHException):
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "authentication" in text.lower():  # e.g. "No authentication methods available"
            return f"authentication failed for {spec.user}@{spec.host} ({text})"
        if "known_hosts" in text:
            return "host key unknown and strict host key checking is on"
        if "banner" in text.lower():
            return f"no SSH banner ({text})"
        return text
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


class SSHRemote:
    """A Remote over one paramiko connection; safe to use from several threads at once."""

    def __init__(self, spec: NodeSpec, client: paramiko.SSHClient) -> None:
        self.spec = spec
        self.name = spec.name
        self._client = client
        self._sftp: paramiko.SFTPClient | None = None
        self._sftp_lock = threading.Lock()

    @classmethod
    def connect(cls, spec: NodeSpec, timeout: float = CONNECT_TIMEOUT) -> "SSHRemote":
        client = paramiko.SSHClient()
        if spec.strict_host_keys:
            client.load_system_host_keys()
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
        else:
            # Throwaway nodes get new host keys on every bring-up; remember nothing on disk.
            client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        try:
            client.connect(
                spec.host, port=spec.port, username=spec.user, password=spec.password,
                key_filename=spec.key_path,
                allow_agent=spec.key_path is None,
                look_for_keys=spec.key_path is None and spec.password is None,
                timeout=timeout, banner_timeout=timeout, auth_timeout=timeout,
            )
        except Exception as e:  # paramiko raises many kinds; all become one clear line
            client.close()
            raise RemoteError(f"{spec.label}: {_describe_connect_error(spec, e)}", host=spec.host) from e
        transport = client.get_transport()
        if transport is not None:
            transport.set_keepalive(15)  # notice a vanished node instead of hanging
        return cls(spec, client)

    def peer_address(self) -> str:
        """The address this connection actually reached (what peers and clients should use)."""
        transport = self._client.get_transport()
        if transport is None:
            return self.spec.host
        return transport.getpeername()[0]

    def _wrap(self, cmd: str, timeout: float | None, sudo: bool) -> str:
        # Always /bin/sh, whatever the login shell, so a command means the same on every host.
        wrapped = f"sh -c {shlex.quote(cmd)}"
        if timeout is not None:
            # Closing the channel does not stop a command without a pty, so bound it remotely too;
            # `timeout` kills the command's whole process group.
            wrapped = f"timeout -k {REMOTE_KILL_AFTER} {timeout + REMOTE_GRACE:.3f} {wrapped}"
        if sudo and self.spec.user != "root":
            wrapped = f"sudo -n sh -c {shlex.quote(wrapped)}"
        # paramiko ignores "exit-signal"; a login shell that waits turns a death by signal N
        # into exit status 128+N, as shells report it, instead of no status at all.
        return f"{wrapped}; exit $?"

    def run(self, cmd: str, timeout: float | None = DEFAULT_TIMEOUT, check: bool = True,
            sudo: bool = True, stdin: str | bytes | None = None) -> RunResult:
        """Run `cmd` under /bin/sh, through `sudo -n` unless we log in as root (the harness
        manages servers, iptables and /var/lib paths, which need root on every node)."""
        transport = self._client.get_transport()
        if transport is None or not transport.is_active():
            # A dropped link (a partition of the controller's path, a restarted sshd): try
            # one new connection before giving up, so heals and teardown still reach the node.
            try:
                fresh = SSHRemote.connect(self.spec)
            except RemoteError as e:
                raise RemoteError(f"{self.spec.label}: connection is closed ({e})", host=self.spec.host, command=cmd) from e
            self._client, self._sftp = fresh._client, None
            transport = self._client.get_transport()
        start = time.monotonic()
        deadline = None if timeout is None else start + timeout
        try:
            chan = transport.open_session(timeout=CONNECT_TIMEOUT)
            chan.exec_command(self._wrap(cmd, timeout, sudo))
        except (paramiko.SSHException, OSError) as e:
            raise RemoteError(f"{self.spec.label}: cannot start {cmd!r}: {e}", host=self.spec.host,
                              command=cmd) from e
        pending = memoryview(stdin.encode() if isinstance(stdin, str) else (stdin or b""))
        if not pending:
            chan.shutdown_write()  # commands that read stdin see EOF at once
        out, err = bytearray(), bytearray()
        try:
            while True:
                busy = False
                while chan.recv_ready():
                    out += chan.recv(65536)
                    busy = True
                while chan.recv_stderr_ready():
                    err += chan.recv_stderr(65536)
                    busy = True
                if pending and chan.send_ready():
                    sent = chan.send(pending[:32768])
                    pending = pending[sent:]
                    if not pending:
                        chan.shutdown_write()
                    busy = True
                # Done once the exit status and EOF are in (or the channel died) and output drained.
                if (chan.closed or (chan.exit_status_ready() and chan.eof_received)) \
                        and not chan.recv_ready() and not chan.recv_stderr_ready():
                    break
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    raise RemoteTimeout(
                        f"{self.spec.label}: {cmd!r} timed out after {timeout:g}s",
                        host=self.spec.host, command=cmd, stderr=err.decode(errors="replace"))
                if not busy:
                    wait = 0.2 if deadline is None else min(0.2, deadline - now)
                    select.select([chan], [], [], max(wait, 0.0))
            code = chan.recv_exit_status() if chan.exit_status_ready() else -1
        finally:
            chan.close()
        if code == -1:  # no exit status: sshd or the connection went away mid-command
            raise RemoteError(f"{self.spec.label}: connection lost while running {cmd!r}",
                              host=self.spec.host, command=cmd, stderr=err.decode(errors="replace"))
        result = RunResult(code, out.decode(errors="replace"), err.decode(errors="replace"))
        if check and code != 0:
            raise RemoteError(
                f"{self.spec.label}: {cmd!r} exited {code}: {_tail(result.stderr) or '(no stderr)'}",
                host=self.spec.host, command=cmd, exit_code=code, stderr=result.stderr)
        return result

    def _sftp_client(self) -> paramiko.SFTPClient:
        with self._sftp_lock:
            if self._sftp is None:
                try:
                    self._sftp = self._client.open_sftp()
                except (paramiko.SSHException, OSError) as e:
                    raise RemoteError(f"{self.spec.label}: SFTP unavailable: {e}", host=self.spec.host) from e
                self._sftp.get_channel().settimeout(DEFAULT_TIMEOUT)
            return self._sftp

    def upload(self, local_path: str | Path, remote_path: str) -> None:
        try:
            self._sftp_client().put(str(local_path), remote_path)
        except (OSError, paramiko.SSHException) as e:
            raise RemoteError(f"{self.spec.label}: upload {local_path} -> {remote_path} failed: {e}",
                              host=self.spec.host) from e

    def download(self, remote_path: str, local_path: str | Path) -> None:
        try:
            self._sftp_client().get(remote_path, str(local_path))
        except (OSError, paramiko.SSHException) as e:
            raise RemoteError(f"{self.spec.label}: download {remote_path} -> {local_path} failed: {e}",
                              host=self.spec.host) from e

    def close(self) -> None:
        with self._sftp_lock:
            if self._sftp is not None:
                self._sftp.close()
                self._sftp = None
        self._client.close()

    def __repr__(self) -> str:
        return f"SSHRemote({self.spec.label})"


def connect_all(specs: Iterable[NodeSpec], timeout: float = CONNECT_TIMEOUT) -> dict[str, Remote]:
    """Connect to every node in parallel; all or nothing, failures reported on one line."""
    specs = list(specs)
    if not specs:
        return {}
    with ThreadPoolExecutor(max_workers=min(32, len(specs))) as pool:
        futures = {s.name: pool.submit(SSHRemote.connect, s, timeout) for s in specs}
    remotes: dict[str, Remote] = {}
    problems: list[RemoteError] = []
    for name, fut in futures.items():
        try:
            remotes[name] = fut.result()
        except RemoteError as e:
            problems.append(e)
    if problems:
        for r in remotes.values():
            r.close()
        raise RemoteError("; ".join(str(p) for p in problems),
                          host=",".join(p.host for p in problems)) from problems[0]
    return remotes


def run_all(remotes: Mapping[str, Remote], cmd: str, timeout: float | None = DEFAULT_TIMEOUT,
            check: bool = True, sudo: bool = True,
            stdin: str | bytes | None = None) -> dict[str, RunResult]:
    """Run one command on every node at once. With check, any failure raises after all finish."""
    if not remotes:
        return {}
    with ThreadPoolExecutor(max_workers=min(32, len(remotes))) as pool:
        futures = {name: pool.submit(r.run, cmd, timeout, False, sudo, stdin) for name, r in remotes.items()}
    results: dict[str, RunResult] = {}
    errors: list[RemoteError] = []
    for name, fut in futures.items():
        try:
            results[name] = fut.result()
        except RemoteError as e:  # timeouts and lost connections
            errors.append(e)
    if check:
        for name, res in results.items():
            if res.exit_code != 0:
                label = getattr(getattr(remotes[name], "spec", None), "label", name)
                errors.append(RemoteError(
                    f"{label}: {cmd!r} exited {res.exit_code}: {_tail(res.stderr) or '(no stderr)'}",
                    host=name, command=cmd, exit_code=res.exit_code, stderr=res.stderr))
    if errors:
        err = RemoteError("\n".join(str(e) for e in errors), host=",".join(e.host for e in errors), command=cmd)
        err.results = results  # type: ignore[attr-defined]  # what did succeed, for the caller
        raise err
    return results
