"""What the clock family does on a node: the libfaketime timestamp file the node's server reads
on every clock call, and the small shell loops (strobe, skew) that rewrite it over time.

The file holds an offset from real time as libfaketime's relative format, seconds with a
fraction ("+1.500", "-0.250"; measured to work in Debian's 0.9.10; unit suffixes are avoided:
"+1500ms" means 1500 minutes there). It is always replaced by rename, so the server never reads
half a file. At most one writer per node: every write first stops the node's loop.

A loop runs as the login user in its own session (setsid), names the run directory on its
command line and writes its pid to `clock-loop.pid` there, so the workspace's sweep of a crashed
run stops it too; it also ends by itself when its duration is over. Only POSIX sh, `date`,
`sleep` and `mv` are used on the node: Apache ZooKeeper's hosts need not have Python.
"""

from __future__ import annotations

import re
import shlex
from typing import TYPE_CHECKING

from harness.preflight import FAKETIME_LIBS

if TYPE_CHECKING:
    from harness.db import Node

TIMESTAMP_FILE = "faketime"
LOOP_PID = "clock-loop.pid"
SHARED_RECORD = "clock-shared"  # the names of libfaketime's semaphore and shared memory
_SHARED = re.compile(r"/faketime_sem_\d+ /faketime_shm_\d+")
STOP_WAIT_S = 5  # a loop that ignores SIGTERM this long gets SIGKILL

# Shared by the loops: write an offset (ms) in libfaketime's format, read the real clock (the
# loop itself runs without libfaketime), sleep until a moment on it.
_PRELUDE = r"""
put() {
  ms=$1; sign=+
  if [ "$ms" -lt 0 ]; then sign=-; ms=$((-ms)); fi
  printf '%s%d.%03d\n' "$sign" $((ms / 1000)) $((ms % 1000)) > "$file.tmp" && mv -f "$file.tmp" "$file"
}
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
sleep_until() {
  d=$(( $1 - $(now_ms) ))
  if [ "$d" -gt 0 ]; then sleep "$((d / 1000)).$(printf %03d $((d % 1000)))"; fi
}
trap 'exit 0' TERM
echo $$ > "$pidf"
"""

# Flip between high and low every period (high first) until the duration is over, then low.
_STROBE = _PRELUDE + r"""
start=$(now_ms); end=$((start + duration)); k=0
while [ $((start + k * period)) -lt "$end" ]; do
  if [ $((k % 2)) -eq 0 ]; then put "$high"; else put "$low"; fi
  k=$((k + 1)); next=$((start + k * period))
  if [ "$next" -gt "$end" ]; then next=$end; fi
  sleep_until "$next"
done
put "$low"; rm -f "$pidf"
"""

# A ramp from `from` to `to` over the duration, one small step every `step` ms.
_SKEW = _PRELUDE + r"""
start=$(now_ms); end=$((start + duration))
while t=$(now_ms); [ "$t" -lt "$end" ]; do
  put $((from + (to - from) * (t - start) / duration))
  sleep_until $((t + step))
done
put "$to"; rm -f "$pidf"
"""


def faketime_spec(offset_ms: int) -> str:
    """An offset in libfaketime's relative format: "+1.500", "-0.250", "+0.000"."""
    sign = "-" if offset_ms < 0 else "+"
    whole, frac = divmod(abs(offset_ms), 1000)
    return f"{sign}{whole}.{frac:03d}"


def timestamp_file(node: Node) -> str:
    return f"{node.dir}/{TIMESTAMP_FILE}"


def _stop_loop(node: Node) -> str:
    """Shell that stops the node's loop, if one of ours runs. Its whole process group gets
    SIGTERM, so a `mv` in flight dies with it; the loop itself exits only after its child is
    done (the TERM trap waits for it), so once the loop is gone nothing of it writes anymore."""
    pid_file = shlex.quote(f"{node.dir}/{LOOP_PID}")
    ours = shlex.quote(f"{node.dir}/")
    return f"""
alive() {{ [ -e /proc/$1 ] && [ "$(sed 's/.*) //' /proc/$1/stat 2>/dev/null | cut -c1)" != Z ]; }}
pid=$(cat {pid_file} 2>/dev/null)
case "$pid" in ''|*[!0-9]*) pid= ;; esac
if [ -n "$pid" ] && grep -qF -- {ours} /proc/$pid/cmdline 2>/dev/null; then
  kill -TERM -$pid 2>/dev/null || kill -TERM $pid 2>/dev/null
  i=0; while alive $pid && [ $i -lt {STOP_WAIT_S * 20} ]; do sleep 0.05; i=$((i + 1)); done
  if alive $pid; then kill -KILL -$pid 2>/dev/null || kill -KILL $pid 2>/dev/null; fi
fi
rm -f {pid_file}
"""


def set_offset(node: Node, offset_ms: int) -> None:
    """Stop the node's loop, then set its offset. Nothing to do when the run directory is gone
    (the servers went with it)."""
    path = shlex.quote(timestamp_file(node))
    write = f"printf '%s\\n' {faketime_spec(offset_ms)} > {path}.tmp && mv -f {path}.tmp {path}"
    node.remote.run(f"[ -d {shlex.quote(node.dir)} ] || exit 0\n{_stop_loop(node)}\n{write}",
                    timeout=30, sudo=False)


def start_strobe(node: Node, low_ms: int, high_ms: int, period_ms: int, duration_ms: int) -> int:
    """Start flipping the node's offset between high and low; its pid."""
    return _start_loop(node, _STROBE, low=low_ms, high=high_ms, period=period_ms, duration=duration_ms)


def start_skew(node: Node, from_ms: int, to_ms: int, duration_ms: int, step_ms: int) -> int:
    """Start moving the node's offset from `from_ms` to `to_ms` in steps; its pid."""
    return _start_loop(node, _SKEW, **{"from": from_ms, "to": to_ms, "duration": duration_ms, "step": step_ms})


def _start_loop(node: Node, body: str, **values: int) -> int:
    pid_file = f"{node.dir}/{LOOP_PID}"
    assigns = " ".join(f"{k}={int(v)}" for k, v in values.items())
    script = f"file={shlex.quote(timestamp_file(node))} pidf={shlex.quote(pid_file)} {assigns}\n{body}"
    quoted = shlex.quote(pid_file)
    out = node.remote.run(
        f"{_stop_loop(node)}\n"
        f"setsid sh -c {shlex.quote(script)} zkchaos-clock-loop </dev/null >/dev/null 2>&1 &\n"
        f"i=0; while [ ! -s {quoted} ] && [ $i -lt 200 ]; do sleep 0.01; i=$((i + 1)); done\n"
        f"cat {quoted}",
        timeout=30, sudo=False)
    return int(out.stdout.strip())


def loop_running(node: Node) -> bool:
    """Whether a loop of ours runs on the node (for tests and checks)."""
    pid_file = shlex.quote(f"{node.dir}/{LOOP_PID}")
    out = node.remote.run(
        f"pid=$(cat {pid_file} 2>/dev/null) && grep -qF -- {shlex.quote(node.dir + '/')} /proc/$pid/cmdline "
        f"2>/dev/null && echo yes || echo no", timeout=20, sudo=False)
    return out.stdout.strip() == "yes"


def make_shared_memory(node: Node, library: str) -> str | None:
    """The semaphore and shared memory libfaketime 0.9.10 insists on (`FAKETIME_SHARED`, "SEM
    SHM"), made once for the node's servers. Left to itself, every preloaded process makes a pair
    in /dev/shm and only the one that made it removes it, when it exits normally: a killed
    server, or one made by `env` before its exec, leaves it behind. Made here by a preloaded
    shell that execs (so it never removes them), and recorded in the run directory; None where
    the host has no POSIX semaphores (libfaketime then does without)."""
    record = shlex.quote(f"{node.dir}/{SHARED_RECORD}")
    out = node.remote.run(
        f"""LD_PRELOAD={shlex.quote(library)} sh -c 'echo "$FAKETIME_SHARED"; exec true' > {record}; cat {record}""",
        timeout=20, sudo=False).stdout.strip()
    return out if _SHARED.fullmatch(out) else None


def remove_shared_memory(node: Node) -> None:
    """Remove the names `make_shared_memory` made. Servers still running keep what they have
    mapped, and, not having made it, never make it again."""
    record = shlex.quote(f"{node.dir}/{SHARED_RECORD}")
    out = node.remote.run(f"cat {record} 2>/dev/null; true", timeout=20, sudo=False).stdout.strip()
    if not _SHARED.fullmatch(out):
        return
    sem, shm = (name.lstrip("/") for name in out.split())
    node.remote.run(f"rm -f /dev/shm/sem.{sem} /dev/shm/{shm} {record}", timeout=20, sudo=False)


def find_library(node: Node) -> str | None:
    """Where libfaketime is on the node, or None."""
    out = node.remote.run(f'for f in {FAKETIME_LIBS}; do [ -f "$f" ] && echo "$f" && break; done; true',
                          timeout=20, sudo=False)
    return out.stdout.strip() or None


def server_env(node: Node, library: str, fake_monotonic: bool, shared: str | None) -> dict[str, str]:
    """The environment that runs the node's server under libfaketime. Measured with Debian's
    0.9.10: the monotonic fix must match the mode, or timed waits on CLOCK_MONOTONIC break
    (Java's Object.wait and parkNanos return at once with the fix and an unfaked monotonic
    clock; the JVM hangs without it when the monotonic clock is faked)."""
    return {
        "LD_PRELOAD": library,
        "FAKETIME_TIMESTAMP_FILE": timestamp_file(node),
        "FAKETIME_NO_CACHE": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "0" if fake_monotonic else "1",
        "FAKETIME_FORCE_MONOTONIC_FIX": "1" if fake_monotonic else "0",
        **({"FAKETIME_SHARED": shared} if shared else {}),
    }
