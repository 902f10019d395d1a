"""History checking speed: `zkchaos analyze --no-report` on generated valid histories of each
workload, 10k, 100k and 1M ops by default, against the targets and against the I/O floor.

Targets: a valid 100k-op register history (20 processes, 10 keys, ~2% info ops, unique values,
zxids and Stat as the register client records them) checked in <= 2.2 s wall, start-up included;
1M ops of any workload in < 60 s and < 2 GB; `analyze` on a tiny history started and done in
< 0.3 s without importing pandas, matplotlib, fabric or paramiko.

Every measurement is a process of its own, so interpreter start-up counts and the peak memory is
that process's (ru_maxrss). The floor is the same kind of process that only reads the history
(`harness.history.read_history`: the file, the JSON, the required fields). Wall time on a shared
machine is noisy: CPU time (user + sys) is shown beside it, with the load average, and --repeat
takes the median of several runs. Histories are written to a temporary directory, removed at the
end. This is a script, not a test: speed targets are measured here, never asserted in tests.

    python benchmarks/checker.py --sizes 10000,100000 --workloads register --repeat 3
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # harness, tests.unit.checkers.simulate

REGISTER_100K_S = 2.2
MILLION_S = 60.0
MILLION_MB = 2048
TINY_S = 0.3
TINY_OPS = 10
FORBIDDEN = ("pandas", "matplotlib", "fabric", "paramiko")
READ_ONLY = "import sys; from harness.history import read_history; read_history(sys.argv[1])"


# --- generated histories: valid ones, records as the workload's client writes them ------------


def register_history(n_ops: int, seed: int) -> tuple[Iterable[dict], dict]:
    from tests.unit.checkers.simulate import simulate

    records = simulate(n_ops, processes=20, keys=10, info_rate=0.02, client=True, seed=seed)
    return records, {"workload": "register", "consistency": "zookeeper", "keys": 10}


GENERATORS: dict[str, Callable[[int, int], tuple[Iterable[dict], dict]]] = {
    "register": register_history,
}


def write_store(workload: str, n_ops: int, seed: int, store: Path) -> None:
    """history.jsonl and test.json, as `zkchaos test` leaves them."""
    records, options = GENERATORS[workload](n_ops, seed)
    store.mkdir(parents=True)
    with open(store / "history.jsonl", "w") as f:
        for rec in records:
            f.write(json.dumps(rec, separators=(",", ":")) + "\n")
    (store / "test.json").write_text(json.dumps(options))


def generate(workload: str, n_ops: int, seed: int, store: Path) -> None:
    """In a child process: a million ops take gigabytes to build, which this process keeps none of."""
    child = multiprocessing.get_context("fork").Process(target=write_store, args=(workload, n_ops, seed, store))
    child.start()
    child.join()
    if child.exitcode != 0:
        raise SystemExit(f"generating {n_ops} {workload} ops failed (exit {child.exitcode})")


# --- measuring one process ----------------------------------------------------------------------


@dataclass
class Run:
    wall: float
    cpu: float  # user + sys
    peak_mb: float
    code: int  # analyze: 0 valid, 1 invalid, 2 unknown, 3 error
    err: str = ""


def run(argv: list[str]) -> Run:
    with tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        text = err.read().decode(errors="replace").strip()
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, proc.returncode, text)


def median_run(argv: list[str], repeat: int) -> Run:
    runs = [run(argv) for _ in range(repeat)]
    return Run(statistics.median(r.wall for r in runs), statistics.median(r.cpu for r in runs),
               max(r.peak_mb for r in runs), max(r.code for r in runs), runs[-1].err)


def analyze_argv(store: Path) -> list[str]:
    return [sys.executable, "-m", "cli", "analyze", "--no-report", str(store)]


VERDICT = {0: "valid", 1: "INVALID", 2: "unknown", 3: "ERROR"}


# --- the table ----------------------------------------------------------------------------------


def targets(workload: str, n_ops: int, r: Run) -> str:
    out = []
    if workload == "register" and n_ops == 100_000:
        out.append(_against(r.wall, REGISTER_100K_S, "s"))
    if n_ops >= 1_000_000:
        out.append(_against(r.wall, MILLION_S, "s"))
        out.append(_against(r.peak_mb, MILLION_MB, "MB"))
    return ", ".join(out) or "-"


def _against(value: float, target: float, unit: str) -> str:
    return f"{value / target:.2f} of {target:g} {unit} {'ok' if value <= target else 'MISSED'}"


def row(cells: Iterable[str], widths: list[int]) -> str:
    return "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))


HEADER = ["workload", "ops", "records", "file MB", "wall s", "CPU s", "peak MB", "verdict",
          "read-only wall s", "CPU s", "wall/read-only", "vs targets"]
WIDTHS = [10, 9, 9, 8, 7, 7, 8, 8, 16, 6, 14, 40]


def measure_sizes(workloads: list[str], sizes: list[int], repeat: int, seed: int, tmp: Path) -> None:
    print(row(HEADER, WIDTHS))
    for workload in workloads:
        for n_ops in sizes:
            store = tmp / f"{workload}-{n_ops}"
            generate(workload, n_ops, seed, store)
            history = store / "history.jsonl"
            with open(history) as f:
                records = sum(1 for _ in f)
            floor = median_run([sys.executable, "-c", READ_ONLY, str(history)], repeat)
            checked = median_run(analyze_argv(store), repeat)
            print(row([workload, n_ops, records, f"{history.stat().st_size / 2**20:.0f}", f"{checked.wall:.2f}",
                       f"{checked.cpu:.2f}", f"{checked.peak_mb:.0f}", VERDICT.get(checked.code, checked.code),
                       f"{floor.wall:.2f}", f"{floor.cpu:.2f}", f"{checked.wall / floor.wall:.1f}x",
                       targets(workload, n_ops, checked)], WIDTHS), flush=True)
            if checked.code == 3 or floor.code != 0:
                print(f"    error: {(checked.err or floor.err).splitlines()[-1:]}")
            for path in store.iterdir():
                path.unlink()  # a million ops take hundreds of MB of disk: not kept for the next size
            store.rmdir()


def measure_startup(repeat: int, seed: int, tmp: Path) -> None:
    store = tmp / "tiny"
    generate("register", TINY_OPS, seed, store)
    r = median_run(analyze_argv(store), max(repeat, 5))
    heavy, culprit = forbidden_imports(analyze_argv(store))
    print(f"\nanalyze on a tiny history ({TINY_OPS} ops): wall {r.wall:.3f} s, CPU {r.cpu:.3f} s, peak {r.peak_mb:.0f} MB, "
          f"{VERDICT.get(r.code, r.code)}; {_against(r.wall, TINY_S, 's')}")
    print(f"  imported of {', '.join(FORBIDDEN)}: {', '.join(heavy) or 'none'}"
          + (f" (pulled in by `import {culprit}`)" if culprit else ""))


def forbidden_imports(argv: list[str]) -> tuple[list[str], str | None]:
    """Which FORBIDDEN packages the command imports, and the top-level import that brought the
    first one in (from -X importtime: nested imports are indented and listed before their parent)."""
    lines = subprocess.run([argv[0], "-X", "importtime", *argv[1:]], cwd=ROOT, capture_output=True,
                           text=True).stderr.splitlines()
    names = [line.rsplit("|", 1)[-1][1:].rstrip() for line in lines if line.startswith("import time:")][1:]
    heavy = [n.strip() for n in names if n.strip() in FORBIDDEN]
    if not heavy:
        return [], None
    first = next(i for i, n in enumerate(names) if n.strip() == heavy[0])
    return heavy, next((n for n in names[first:] if not n.startswith(" ")), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="ops per history, comma-separated")
    parser.add_argument("--workloads", default=",".join(GENERATORS),
                        help=f"comma-separated, of: {', '.join(GENERATORS)}")
    parser.add_argument("--repeat", type=int, default=1, help="runs per measurement (the median is shown)")
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    workloads = [w for w in args.workloads.split(",") if w]
    unknown = [w for w in workloads if w not in GENERATORS]
    if unknown:
        parser.error(f"no generator for {', '.join(unknown)}; choose from {', '.join(GENERATORS)}")
    sizes = [int(s) for s in args.sizes.split(",") if s]
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; "
          f"median of {args.repeat} run(s)\n")
    with tempfile.TemporaryDirectory(prefix="zkchaos-checker-bench-") as tmp:
        measure_sizes(workloads, sizes, args.repeat, args.seed, Path(tmp))
        measure_startup(args.repeat, args.seed, Path(tmp))
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
