"""Namespace nodes that behave like separate machines.

A real remote host has its own filesystem and often a login user who is not root. A node made
`separate` runs its sshd in a mount namespace of its own whose /tmp, /opt, /var/lib/zkchaos and
/home (and /root) are private directories, and whose /etc/passwd, group, shadow and sudoers.d are
the machine's plus a login user that exists nowhere else. Whatever the harness does on such a
node stays inside it, so a shortcut through the shared filesystem cannot hide a bug; and all of
it disappears with the node's last process (the mounts) and its state directory (the files).

Quirks make one node differ the way hosts do: no SFTP subsystem, a package that is not installed
(its paths masked), a sudo that asks for a password.
"""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

PRIVATE_DIRS = {"/tmp": 0o1777, "/opt": 0o755, "/var/lib/zkchaos": 0o755, "/home": 0o755, "/root": 0o700}


@dataclass(frozen=True)
class NodeQuirks:
    sftp: bool = True
    hide: tuple[str, ...] = ()  # paths masked in the node's view: a package that is not installed
    sudo_password: bool = False  # the login user's sudo asks for a password

    def as_dict(self) -> dict:
        return {"sftp": self.sftp, "hide": list(self.hide), "sudo_password": self.sudo_password}


def plain_shell(passwd: str, login: str) -> str:
    """/etc/passwd with `login`'s shell set to /bin/sh. sshd runs every command through the
    login shell, and bash, started by sshd, reads ~/.bashrc: on a machine whose root sources
    pyenv and cargo there, that is ~0.2 s of every one of the harness's hundreds of commands."""
    lines = []
    for line in passwd.splitlines():
        fields = line.split(":")
        if len(fields) == 7 and fields[0] == login:
            fields[6] = "/bin/sh"
        lines.append(":".join(fields))
    return "\n".join(lines) + "\n"


def free_uid(start: int = 4200) -> int:
    """A uid (and gid) no account on this machine uses."""
    taken = {p.pw_uid for p in pwd.getpwall()}
    uid = start
    while uid in taken:
        uid += 1
    return uid


def build_root(root: Path, login: str, uid: int, authorized_keys: str, quirks: NodeQuirks) -> None:
    """The node's private directories and account files, under `root` on this machine."""
    for path, mode in PRIVATE_DIRS.items():
        d = root / path.strip("/").replace("/", "-")
        d.mkdir(parents=True, exist_ok=True)
        d.chmod(mode)
    (root / "empty").mkdir(exist_ok=True)
    home = root / ("root" if login == "root" else f"home/{login}")
    ssh = home / ".ssh"
    ssh.mkdir(parents=True, exist_ok=True)
    (ssh / "authorized_keys").write_text(authorized_keys)
    if login != "root":
        for p in (home, ssh, ssh / "authorized_keys"):
            os.chown(p, uid, uid)
    etc = root / "etc"
    etc.mkdir(exist_ok=True)
    passwd = Path("/etc/passwd").read_text()
    group = Path("/etc/group").read_text()
    shadow = Path("/etc/shadow").read_text()
    if login != "root":
        passwd += f"{login}:x:{uid}:{uid}:zkchaos test login:/home/{login}:/bin/sh\n"
        group += f"{login}:x:{uid}:\n"
        shadow += f"{login}:*:19000:0:99999:7:::\n"  # "*": no password, yet not locked for keys
    (etc / "passwd").write_text(plain_shell(passwd, login))
    (etc / "group").write_text(group)
    (etc / "shadow").write_text(shadow)
    (etc / "shadow").chmod(0o640)
    sudoers = etc / "sudoers.d"
    sudoers.mkdir(exist_ok=True)
    rule = "ALL" if quirks.sudo_password else "NOPASSWD: ALL"
    (sudoers / "zkchaos-test").write_text(f"{login} ALL=(ALL:ALL) {rule}\n")
    (sudoers / "zkchaos-test").chmod(0o440)


def mount_script(root: Path, stage: Path, quirks: NodeQuirks) -> str:
    """Shell run inside the node's new mount namespace before sshd is exec'd. `root` is first
    bound at `stage` (a path no private mount shadows: `root` itself may lie under /tmp or
    /var/lib/zkchaos), and every private directory is bound from there."""
    lines = [f"mount --bind {shlex.quote(str(root))} {shlex.quote(str(stage))}"]
    root = stage
    for path in PRIVATE_DIRS:
        src = root / path.strip("/").replace("/", "-")
        lines.append(f"mkdir -p {path} && mount --bind {shlex.quote(str(src))} {path}")
    for name in ("passwd", "group", "shadow", "sudoers.d"):
        if name != "sudoers.d" or Path("/etc/sudoers.d").is_dir():
            lines.append(f"mount --bind {shlex.quote(str(root / 'etc' / name))} /etc/{name}")
    for path in quirks.hide:
        mask = str(root / "empty") if Path(path).is_dir() else "/dev/null"
        lines.append(f"mount --bind {shlex.quote(mask)} {shlex.quote(path)}")
    return " && ".join(lines)


def remove_root(root: Path) -> None:
    shutil.rmtree(root, ignore_errors=True)
