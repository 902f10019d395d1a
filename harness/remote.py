"""Remote control of nodes over SSH, with fabric (paramiko underneath).

One code path for every node: local network-namespace nodes (each runs its own sshd) and real
remote hosts are both reached the same way, so what the tests exercise is what users run.
fabric gives the connection (user, port, keys, agent, ~/.ssh/config), command execution with
exit codes and timeouts, SFTP put/get and parallel groups; our own code is kept only where
fabric has no answer, and says so where it is.
"""

from __future__ import annotations

import errno
import io
import logging
import shlex
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Protocol, runtime_checkable

import paramiko
from fabric import Config, Connection, ThreadingGroup
from fabric.exceptions import GroupException
from invoke.exceptions import CommandTimedOut

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 60.0  # seconds; every remote command is bounded
CONNECT_TIMEOUT = 10.0
# The remote `timeout` wrapper fires a little after our local deadline so that, normally, we see
# the deadline first; it then kills the command's whole process group (TERM, KILL after grace).
REMOTE_GRACE = 0.5
REMOTE_KILL_AFTER = 2
COPY_CHUNK = 1 << 16


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
    known_hosts: str | None = None  # with strict_host_keys: this file besides ~/.ssh/known_hosts
    ssh_config: bool = True  # read ~/.ssh/config (throwaway local nodes say no)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.host}:{self.port})"


@runtime_checkable
class Remote(Protocol):
    """What the harness needs from a node (after Jepsen's Remote)."""

    name: str

    def run(self, cmd: str, timeout: float | None = DEFAULT_TIMEOUT, check: bool = True,
            sudo: bool = True) -> RunResult: ...

    def upload(self, local_path: str | Path, remote_path: str) -> None: ...

    def download(self, remote_path: str, local_path: str | Path) -> None: ...

    def close(self) -> None: ...


def tail(text: str, lines: int = 5, chars: int = 600) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])[-chars:]


def describe_connect_error(spec: NodeSpec, exc: BaseException) -> str:
    """One short phrase for why connecting failed; the caller prefixes the node."""
    if isinstance(exc, paramiko.AuthenticationException):
        return f"authentication failed for {spec.user}@{spec.host}"
    if isinstance(exc, paramiko.BadHostKeyException):
        return ("host key does not match the one in known_hosts (host reinstalled, or not the host "
                "you meant?): fix ~/.ssh/known_hosts or drop --strict-host-keys")
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        # paramiko wraps the per-address socket errors; report the first one.
        inner = next(iter(exc.errors.values()), None)
        return describe_connect_error(spec, inner) if inner else "connection failed"
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
            return ("host key not in known_hosts and --strict-host-keys is on: "
                    f"add it (ssh-keyscan -p {spec.port} {spec.host} >> ~/.ssh/known_hosts)")
        if "banner" in text.lower():
            return f"no SSH banner ({text})"
        return text
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


def wrap_command(cmd: str, user: str, timeout: float | None, sudo: bool) -> str:
    """The command line sent to sshd. Always /bin/sh, whatever the login shell, so a command
    means the same on every host. fabric's own timeout only closes the channel, which does not
    stop a command without a pty, so the command is bounded remotely too (`timeout` kills its
    whole process group). `sudo -n` never prompts: a sudo that wants a password fails at once
    (the preflight names it) instead of hanging the run."""
    wrapped = f"sh -c {shlex.quote(cmd)}"
    if timeout is not None:
        wrapped = f"timeout -k {REMOTE_KILL_AFTER} {timeout + REMOTE_GRACE:.3f} {wrapped}"
    if sudo and user != "root":
        wrapped = f"sudo -n sh -c {shlex.quote(wrapped)}"
    # paramiko ignores "exit-signal"; a login shell that waits turns a death by signal N
    # into exit status 128+N, as shells report it, instead of no status at all.
    return f"{wrapped}; exit $?"


class SSHRemote:
    """A Remote over one fabric Connection; safe to use from several threads at once."""

    def __init__(self, spec: NodeSpec, conn: Connection) -> None:
        self.spec = spec
        self.name = spec.name
        self.conn = conn
        self._open_lock = threading.Lock()
        self._sftp_missing = False

    @staticmethod
    def connection(spec: NodeSpec, timeout: float = CONNECT_TIMEOUT) -> Connection:
        """A not yet opened fabric Connection for `spec`."""
        config = Config(overrides={"load_ssh_configs": spec.ssh_config})
        conn = Connection(
            spec.host, user=spec.user, port=spec.port, config=config,
            connect_timeout=max(1, round(timeout)),
            connect_kwargs=_auth_kwargs(spec, timeout),
        )
        if spec.strict_host_keys:
            conn.client.load_system_host_keys()
            if spec.known_hosts:
                conn.client.load_host_keys(spec.known_hosts)
            conn.client.set_missing_host_key_policy(paramiko.RejectPolicy())
        # Otherwise fabric's default: accept and remember nothing on disk (throwaway nodes get
        # new host keys on every bring-up).
        return conn

    @classmethod
    def connect(cls, spec: NodeSpec, timeout: float = CONNECT_TIMEOUT) -> "SSHRemote":
        remote = cls(spec, cls.connection(spec, timeout))
        remote.ensure_open()
        return remote

    def ensure_open(self) -> None:
        """Open the connection, or re-open a dropped one (a partition of the controller's path,
        a restarted sshd) so heals and teardown still reach the node."""
        with self._open_lock:  # two threads must not both reconnect
            if self.conn.is_connected:
                return
            try:
                self.conn.open()
            except Exception as e:  # paramiko raises many kinds; all become one clear line
                self.conn.close()
                raise RemoteError(f"{self.spec.label}: {describe_connect_error(self.spec, e)}",
                                  host=self.spec.host) from e
            self.conn.transport.set_keepalive(15)  # notice a vanished node instead of hanging

    def peer_address(self) -> str:
        """The address this connection actually reached (what peers and clients should use)."""
        transport = self.conn.transport
        return self.spec.host if transport is None else transport.getpeername()[0]

    def run(self, cmd: str, timeout: float | None = DEFAULT_TIMEOUT, check: bool = True,
            sudo: bool = True) -> RunResult:
        """Run `cmd` under /bin/sh; through `sudo -n` when `sudo` and we are not root (iptables,
        package installs). Servers under test run as the login user and need no sudo."""
        self.ensure_open()
        try:
            result = self.conn.run(
                wrap_command(cmd, self.spec.user, timeout, sudo), hide=True, warn=True, pty=False,
                timeout=timeout, in_stream=io.StringIO(""), encoding="utf-8",
            )
        except CommandTimedOut as e:
            raise RemoteTimeout(f"{self.spec.label}: {cmd!r} timed out after {timeout:g}s",
                                host=self.spec.host, command=cmd, stderr=e.result.stderr) from None
        except (paramiko.SSHException, OSError, EOFError) as e:
            raise RemoteError(f"{self.spec.label}: cannot run {cmd!r}: {e or type(e).__name__}",
                              host=self.spec.host, command=cmd) from e
        if result.exited == -1:  # no exit status: sshd or the connection went away mid-command
            raise RemoteError(f"{self.spec.label}: connection lost while running {cmd!r}",
                              host=self.spec.host, command=cmd, stderr=result.stderr)
        out = RunResult(result.exited, result.stdout, result.stderr)
        if check and out.exit_code != 0:
            raise RemoteError(
                f"{self.spec.label}: {cmd!r} exited {out.exit_code}: {tail(out.stderr) or '(no stderr)'}",
                host=self.spec.host, command=cmd, exit_code=out.exit_code, stderr=out.stderr)
        return out

    # --- files ---------------------------------------------------------------------------------
    # fabric's put/get need the SFTP subsystem. Some sshd configurations have none; for those
    # (our own code: fabric has no fallback) bytes are streamed through `cat` on an exec channel.

    def upload(self, local_path: str | Path, remote_path: str) -> None:
        self._transfer(local_path, remote_path, "upload", self.conn.put, self._cat_upload)

    def download(self, remote_path: str, local_path: str | Path) -> None:
        self._transfer(remote_path, local_path, "download", self.conn.get, self._cat_download)

    def _transfer(self, src, dst, what: str, sftp_copy, exec_copy) -> None:
        self.ensure_open()
        try:
            if not self._sftp_missing:
                try:
                    sftp_copy(str(src), str(dst))
                    return
                except (paramiko.SSHException, EOFError) as e:
                    if not _sftp_refused(e):
                        raise
                    log.info("%s: no SFTP subsystem; copying files over the exec channel", self.spec.label)
                    self._sftp_missing = True
            exec_copy(src, dst)
        except (OSError, paramiko.SSHException, EOFError) as e:
            raise RemoteError(f"{self.spec.label}: {what} {src} -> {dst} failed: {e or type(e).__name__}",
                              host=self.spec.host) from e

    def _exec_channel(self, cmd: str) -> paramiko.Channel:
        chan = self.conn.transport.open_session(timeout=CONNECT_TIMEOUT)
        chan.settimeout(DEFAULT_TIMEOUT)
        chan.exec_command(wrap_command(cmd, self.spec.user, DEFAULT_TIMEOUT, sudo=False))
        return chan

    def _cat_upload(self, local_path: str | Path, remote_path: str) -> None:
        chan = self._exec_channel(f"cat > {shlex.quote(remote_path)}")
        try:
            with open(local_path, "rb") as f:
                while chunk := f.read(COPY_CHUNK):
                    chan.sendall(chunk)
            chan.shutdown_write()
            self._finish(chan, "cat >")
        finally:
            chan.close()

    def _cat_download(self, remote_path: str, local_path: str | Path) -> None:
        chan = self._exec_channel(f"cat {shlex.quote(remote_path)}")
        try:
            chan.shutdown_write()
            with open(local_path, "wb") as f:
                while chunk := chan.recv(COPY_CHUNK):
                    f.write(chunk)
            self._finish(chan, "cat")
        finally:
            chan.close()

    @staticmethod
    def _finish(chan: paramiko.Channel, what: str) -> None:
        code = chan.recv_exit_status()
        if code != 0:
            err = b""
            while chan.recv_stderr_ready():
                err += chan.recv_stderr(COPY_CHUNK)
            raise OSError(f"{what} exited {code}: {tail(err.decode(errors='replace')) or '(no stderr)'}")

    def close(self) -> None:
        self.conn.close()

    def __repr__(self) -> str:
        return f"SSHRemote({self.spec.label})"


def _auth_kwargs(spec: NodeSpec, timeout: float) -> dict:
    """paramiko's connect arguments: the key or password given, else the agent and ~/.ssh keys."""
    kwargs: dict = {
        "allow_agent": spec.key_path is None,
        "look_for_keys": spec.key_path is None and spec.password is None,
        "banner_timeout": timeout, "auth_timeout": timeout,
    }
    if spec.key_path is not None:
        kwargs["key_filename"] = [spec.key_path]
    if spec.password is not None:
        kwargs["password"] = spec.password
    return kwargs


def _sftp_refused(exc: BaseException) -> bool:
    """paramiko's ways of saying the server has no SFTP subsystem."""
    text = str(exc).lower()
    return isinstance(exc, EOFError) or "channel closed" in text or "subsystem" in text


def connect_all(specs: Iterable[NodeSpec], timeout: float = CONNECT_TIMEOUT) -> dict[str, SSHRemote]:
    """Connect to every node at once (a fabric ThreadingGroup); all or nothing, one line per
    unreachable node."""
    specs = list(specs)
    if not specs:
        return {}
    remotes = {s.name: SSHRemote(s, SSHRemote.connection(s, timeout)) for s in specs}
    by_conn = {id(r.conn): r for r in remotes.values()}
    group = ThreadingGroup.from_connections([r.conn for r in remotes.values()])
    problems: list[str] = []
    try:
        group.run("true", hide=True, warn=True, in_stream=False, timeout=timeout)
    except GroupException as e:
        for conn, outcome in e.result.items():
            if isinstance(outcome, BaseException):
                spec = by_conn[id(conn)].spec
                problems.append(f"{spec.label}: {describe_connect_error(spec, outcome)}")
    if problems:
        for r in remotes.values():
            r.close()
        raise RemoteError("\n".join(problems), host=",".join(p.split(" ", 1)[0] for p in problems))
    for r in remotes.values():
        r.conn.transport.set_keepalive(15)
    return remotes


def run_all(remotes: Mapping[str, SSHRemote], cmd: str, timeout: float | None = DEFAULT_TIMEOUT,
            check: bool = True, sudo: bool = True) -> dict[str, RunResult]:
    """Run one command on every node at once (a fabric ThreadingGroup). With check, any failure
    raises after all finish, naming every node that failed; `.results` holds what succeeded."""
    if not remotes:
        return {}
    for r in remotes.values():
        r.ensure_open()
    by_conn = {id(r.conn): (name, r) for name, r in remotes.items()}
    users = {r.spec.user for r in remotes.values()}
    results: dict[str, RunResult] = {}
    errors: list[RemoteError] = []
    for user in sorted(users):  # one wrapped command line per login user
        members = [r for r in remotes.values() if r.spec.user == user]
        group = ThreadingGroup.from_connections([r.conn for r in members])
        try:
            outcomes = group.run(wrap_command(cmd, user, timeout, sudo), hide=True, warn=True,
                                 pty=False, timeout=timeout, in_stream=io.StringIO(""), encoding="utf-8")
        except GroupException as e:
            outcomes = e.result
        for conn, outcome in outcomes.items():
            name, r = by_conn[id(conn)]
            label = r.spec.label
            if isinstance(outcome, CommandTimedOut):
                errors.append(RemoteTimeout(f"{label}: {cmd!r} timed out after {timeout:g}s", host=name, command=cmd))
            elif isinstance(outcome, BaseException):
                errors.append(RemoteError(f"{label}: cannot run {cmd!r}: {outcome}", host=name, command=cmd))
            elif outcome.exited == -1:
                errors.append(RemoteError(f"{label}: connection lost while running {cmd!r}", host=name, command=cmd))
            else:
                results[name] = RunResult(outcome.exited, outcome.stdout, outcome.stderr)
    if check:
        for name, res in results.items():
            if res.exit_code != 0:
                label = remotes[name].spec.label
                errors.append(RemoteError(
                    f"{label}: {cmd!r} exited {res.exit_code}: {tail(res.stderr) or '(no stderr)'}",
                    host=name, command=cmd, exit_code=res.exit_code, stderr=res.stderr))
    if errors:
        err = RemoteError("\n".join(str(e) for e in errors), host=",".join(e.host for e in errors), command=cmd)
        err.results = results  # type: ignore[attr-defined]  # what did succeed, for the caller
        raise err
    return results
