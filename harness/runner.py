"""`zkchaos test`: provision -> install + start the DB -> healthy -> workload and nemesis under
the time limit -> heal everything -> recover -> final reads -> collect logs -> teardown ->
check -> report -> exit code (0 valid, 1 invalid, 2 unknown, 3 the harness failed).

Faults are always undone: the nemesis heals in a `finally` that also runs on errors and
Ctrl-C, and nodes this run created are removed the same way.
"""

from __future__ import annotations

import logging
import random
from functools import reduce
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.markup import escape

from nemesis.schedule import make_nemeses

from .db import Node, ServerDB, make_db
from .history import INFO, HistoryRecorder
from .preflight import Needs
from .store import RunDir, test_record
from .workspace import Workspace

log = logging.getLogger(__name__)

EXIT_VALID, EXIT_INVALID, EXIT_UNKNOWN, EXIT_HARNESS = 0, 1, 2, 3
FINAL_READ_PROCESS = 10**9


def _interrupt_on_signals() -> dict:
    """SIGTERM (a CI timeout) and SIGHUP (the controller's session dropped) end a run the way
    Ctrl-C does, so the faults are healed and the nodes torn down."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = {}
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        previous[sig] = signal.getsignal(sig)
        signal.signal(sig, interrupt if sig != signal.SIGINT else signal.default_int_handler)
    return previous


def _restore_signals(previous: dict) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


@dataclass
class TestOptions:
    workload: str = "register"
    nemesis: list[str] = field(default_factory=lambda: ["partition", "kill", "pause"])
    db: str = "zkchaos"
    consistency: str = "zookeeper"
    time_limit: float = 60.0
    concurrency: int = 10
    rate: float = 100.0
    nemesis_interval: float = 10.0
    read_mode: str = "plain"
    keys: int = 5
    nodes: list[str] = field(default_factory=list)
    local_nodes: int = 5
    ssh_user: str = "root"
    ssh_key: str | None = None
    ssh_port: int = 22
    ssh_password: str | None = None
    strict_host_keys: bool = False
    known_hosts: str | None = None
    op_timeout: float = 5.0
    recovery_time: float = 30.0
    tick_time: int = 500
    zookeeper_path: str | None = None
    node_dir: str | None = None
    seed: int | None = None
    store: str = "store"
    name: str | None = None

    def test_name(self) -> str:
        return self.name or f"{self.db}-{self.workload}-{'+'.join(self.nemesis) or 'none'}"


class RateLimiter:
    """A shared schedule of evenly spaced slots: `rate` ops per second across all workers."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.next_at = time.monotonic()
        self.lock = threading.Lock()

    def wait(self, stop: threading.Event) -> bool:
        with self.lock:
            now = time.monotonic()
            slot = max(now, self.next_at)
            self.next_at = slot + self.interval
        delay = slot - time.monotonic()
        return not stop.wait(delay) if delay > 0 else not stop.is_set()


@dataclass
class RunState:
    """Counters the progress display reads."""

    started: float = 0.0
    ok: int = 0
    fail: int = 0
    info: int = 0
    phase: str = "starting"
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, outcome: str) -> None:
        with self.lock:
            setattr(self, outcome, getattr(self, outcome) + 1)


class TestRun:
    def __init__(self, opts: TestOptions, console=None) -> None:
        self.opts = opts
        self.console = console
        self.rng = random.Random(opts.seed)
        self.state = RunState()
        self.cluster = None
        self.remotes: dict[str, Any] = {}
        self.nodes: list[Node] = []
        self.db: ServerDB = make_db(opts.db, opts.tick_time, opts.zookeeper_path)
        self.workspace = Workspace(opts.node_dir)
        self.nemeses = make_nemeses(opts.nemesis)
        self.teardown_problems: list[str] = []
        self.schedule = None
        self.stop = threading.Event()
        self.history: HistoryRecorder | None = None
        self.workers: list[threading.Thread] = []
        self.workload_done = False
        self.interrupted = False
        self.local_lock = None

    # --- the whole run ---------------------------------------------------------------------------

    def run(self) -> int:
        """The whole test; faults healed and nodes torn down on every way out (errors,
        Ctrl-C, SIGTERM, SIGHUP), then the check on the collected history."""
        opts = self.opts
        code = EXIT_HARNESS
        handler = None
        previous = _interrupt_on_signals()
        try:
            self.run_dir = RunDir.create(Path(opts.store), opts.test_name())
            handler = self.run_dir.attach_log()
            start_time = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            self.run_dir.write_json(self.run_dir.test_json, test_record(asdict(opts), opts.test_name(), start_time))
            self.history = HistoryRecorder(self.run_dir.history)
            self._provision()
            self._start_db()
            self._workload()
            self.workload_done = True
        except KeyboardInterrupt:
            log.warning("interrupted: healing and tearing down")
            self._say("interrupted: healing and tearing down...")
            self.interrupted = True
        except Exception as e:  # noqa: BLE001 - reported as a harness failure (exit 3)
            log.exception("harness failure: %s", e)
            self._say(f"[red]harness failure:[/] {escape(str(e))}")
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip the teardown
            try:
                self._cleanup()
            finally:
                _restore_signals(previous)
                if self.history is not None:
                    self.history.close()
        try:
            if self.workload_done:
                self.state.phase = "checking"
                code = self._check()
        except Exception as e:  # noqa: BLE001
            log.exception("checking failed: %s", e)
            self._say(f"[red]harness failure while checking:[/] {escape(str(e))}")
            code = EXIT_HARNESS
        finally:
            if handler is not None:
                logging.getLogger().removeHandler(handler)
            if self.local_lock is not None:
                self.local_lock.close()
        if self.interrupted:
            raise KeyboardInterrupt
        return code

    def hold_local_lock(self) -> None:
        """One local-cluster test at a time: two would share the namespaces and node dirs."""
        import fcntl

        path = Path("/var/lib/zkchaos")
        path.mkdir(parents=True, exist_ok=True)
        lock = open(path / "test.lock", "w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise RuntimeError("another zkchaos test is using the local cluster; wait for it to finish") from None
        self.local_lock = lock

    def _say(self, msg: str) -> None:
        if self.console is not None:
            self.console.print(msg, soft_wrap=True)  # one long line stays one line (CI logs, grep)
        log.info("%s", msg)

    # --- phases ----------------------------------------------------------------------------------

    def _provision(self) -> None:
        from .provision import prepare_hosts, provision

        self.state.phase = "provisioning"
        self.nodes = provision(self.opts, self._say, self)
        self.state.phase = "checking the hosts"
        prepare_hosts(self.nodes, self.workspace, self._needs)
        # test.json names the nodes actually used (a local cluster's are made up here).
        record = self.run_dir.read_json(self.run_dir.test_json)
        record["nodes"] = [f"{n.name}={n.address}" if n.name != n.address else n.name for n in self.nodes]
        self.run_dir.write_json(self.run_dir.test_json, record)

    def _needs(self, node: Node) -> Needs:
        """What this run needs of a host: the DB's needs and every fault family's."""
        return reduce(lambda a, b: a | b, (n.needs for n in self.nemeses), self.db.needs(node))

    def _start_db(self) -> None:
        self.state.phase = f"installing {self.opts.db}"
        self.db.prepare(self.nodes)
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            list(pool.map(lambda n: self.db.setup(n, self.nodes), self.nodes))
            list(pool.map(self.db.start, self.nodes))
        self.state.phase = "waiting for a healthy ensemble"
        self.db.wait_ready(self.nodes, timeout=120)
        leader = self.db.leader(self.nodes)
        self._say(f"{self.opts.db} serving on {len(self.nodes)} nodes; leader {leader.name if leader else '-'}")

    def _workload(self) -> None:
        from nemesis.base import NemesisContext
        from nemesis.schedule import Schedule
        from workloads.register import RegisterGenerator

        opts = self.opts
        self.generator = RegisterGenerator(opts.keys, random.Random(self.rng.random()))
        limiter = RateLimiter(opts.rate)
        ctx = NemesisContext(self.nodes, self.db, random.Random(self.rng.random()))
        self.schedule = Schedule(self.nemeses, ctx, self.history, opts.nemesis_interval)
        workers = self.workers = [
            threading.Thread(target=self._worker, args=(i, limiter), daemon=True) for i in range(opts.concurrency)
        ]
        nemesis_thread = threading.Thread(target=self.schedule.run, args=(self.stop,), daemon=True)
        self.state.started = time.monotonic()
        self.state.phase = "running"
        for t in workers:
            t.start()
        nemesis_thread.start()
        from reports.terminal import follow_progress

        follow_progress(self, opts.time_limit)
        self.stop.set()
        nemesis_thread.join(timeout=opts.nemesis_interval + 60)
        # One deadline for all workers: an op in flight takes at most a few op timeouts.
        deadline = time.monotonic() + 3 * opts.op_timeout + 10
        for t in workers:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
        self.state.phase = "healing"
        self.schedule.teardown()
        self.state.phase = "recovering"
        try:
            self.db.wait_ready(self.nodes, timeout=opts.recovery_time)
        except TimeoutError as e:
            self._say(f"[yellow]not healthy after healing:[/] {escape(str(e))}")
        self.state.phase = "final reads"
        self._final_reads()

    def _worker(self, i: int, limiter: RateLimiter) -> None:
        from workloads.register import RegisterClient

        opts = self.opts
        node = self.nodes[i % len(self.nodes)]
        process = i
        client = RegisterClient(f"{node.address}:2181", opts.op_timeout, read_mode=opts.read_mode)
        while not self.stop.is_set():
            try:
                client.open(timeout=opts.op_timeout)
                break
            except Exception:  # noqa: BLE001 - the node may be down: keep trying until the end
                client.close()
                client = RegisterClient(f"{node.address}:2181", opts.op_timeout, read_mode=opts.read_mode)
                self.stop.wait(0.5)
        try:
            while limiter.wait(self.stop):
                f, value = self.generator.next()
                inv = self.history.invoke(process, node.name, f, value, session=client.session())
                done = client.invoke(f, value)
                self.history.complete(inv, done.type, value=done.value, error=done.error, zxid=done.zxid, session=client.session())
                self.state.count(done.type)
                if done.type == INFO:
                    # The op may still take effect later; this process is done with it, and a
                    # new process id keeps "at most one op open per process" true.
                    process += opts.concurrency
        finally:
            client.close()

    def _final_reads(self) -> None:
        """After healing: every key read (after a sync) through every node."""
        from workloads.register import RegisterClient

        process = FINAL_READ_PROCESS  # far above any worker's process id
        for node in self.nodes:
            client = RegisterClient(f"{node.address}:2181", self.opts.op_timeout * 2, read_mode="sync")
            try:
                client.open(timeout=max(self.opts.recovery_time, self.opts.op_timeout))
            except Exception as e:  # noqa: BLE001
                self._say(f"[yellow]final reads: cannot reach {node.name}:[/] {escape(str(e))}")
                client.close()
                continue
            try:
                for key in range(self.opts.keys):
                    # Marked final: taken after healing and a sync, they show the committed
                    # state, which lets the ZooKeeper model call a missing write lost.
                    request = {"key": key, "value": None, "final": True}
                    inv = self.history.invoke(process, node.name, "read", request, session=client.session())
                    done = client.invoke("read", {"key": key, "value": None})
                    value = dict(done.value, final=True) if isinstance(done.value, dict) else done.value
                    self.history.complete(inv, done.type, value=value, error=done.error, zxid=done.zxid, session=client.session())
                    process += 1
            finally:
                client.close()

    def _check(self) -> int:
        from .analysis import analyze_run

        results = analyze_run(self.run_dir, self.history.records, asdict(self.opts), self.console)
        return exit_code(results["valid"])

    def _cleanup(self) -> None:
        """Every step attempted whatever the others do: heal, collect logs, teardown."""
        self.stop.set()
        if self.schedule is not None:
            try:
                self.schedule.teardown()
            except BaseException as e:  # noqa: BLE001
                log.warning("final heal failed: %s", e)
        if getattr(self, "run_dir", None) is None:
            return
        from .provision import collect_and_teardown

        self.teardown_problems = collect_and_teardown(self, self.run_dir)
        for line in self.teardown_problems:
            self._say(f"[yellow]teardown:[/] {escape(line)}")


def exit_code(valid: Any) -> int:
    if valid is True:
        return EXIT_VALID
    if valid is False:
        return EXIT_INVALID
    return EXIT_UNKNOWN
