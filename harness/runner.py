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

import nemesis
import workloads

from .db import Node, ServerDB, make_db
from .exits import EXIT_HARNESS, exit_code
from .history import INFO, HistoryRecorder
from .workload import Client
from .preflight import Needs
from .store import RunDir, test_record
from .workspace import Workspace

log = logging.getLogger(__name__)

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
    client_failover: str = "yes"  # sessions move to another server when theirs goes away
    rate: float = 100.0
    nemesis_interval: tuple[float, float] = (5.0, 15.0)  # bounds of the gaps between faults and of their lifetimes
    nemesis_targets: list[str] | None = None
    nodes: list[str] = field(default_factory=list)
    local_nodes: int = 5
    local_prefix: str = "zkc"
    local_subnet: str = "10.66.77.0/24"
    ssh_user: str = "root"
    ssh_key: str | None = None
    ssh_port: int = 22
    ssh_password: str | None = None
    strict_host_keys: bool = False
    known_hosts: str | None = None
    op_timeout: float = 5.0
    recovery_time: float = 30.0
    tick_time: int = 500
    snap_count: int = 100
    zookeeper_path: str | None = None
    node_dir: str | None = None
    seed: int | None = None
    store: str = "store"
    name: str | None = None
    specific: dict[str, Any] = field(default_factory=dict)  # the workload's and families' own options

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
        if opts.seed is None:  # drawn and recorded, so every run can be replayed
            opts.seed = random.SystemRandom().randrange(2**31)
        self.opts = opts
        self.console = console
        self.rng = random.Random(opts.seed)
        self.workload = workloads.get(opts.workload)
        self.state = RunState()
        self.cluster = None
        self.remotes: dict[str, Any] = {}
        self.nodes: list[Node] = []
        self.db: ServerDB = make_db(opts.db, opts.tick_time, opts.zookeeper_path)
        self.db.settings["snapCount"] = str(opts.snap_count)
        self.workspace = Workspace(opts.node_dir)
        self.nemeses = nemesis.make(opts.nemesis, self.db, len(opts.nodes) or opts.local_nodes, opts.nemesis_targets)
        self.teardown_problems: list[str] = []
        self.faults_left: list[str] = []
        self.ctx = None
        self.schedule = None
        self.stop = threading.Event()
        self.history: HistoryRecorder | None = None
        self.workers: list[threading.Thread] = []
        self.workload_done = False
        self.interrupted = False
        self.local_lock = None
        self.run_dir: RunDir | None = None  # made when the run starts

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
            self.run_dir.write_json(self.run_dir.test_json, test_record(self.options(), opts.test_name(), start_time))
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
                self._phase("checking")
                code = self._check()
        except Exception as e:  # noqa: BLE001
            log.exception("checking failed: %s", e)
            self._say(f"[red]harness failure while checking:[/] {escape(str(e))}")
            code = EXIT_HARNESS
        finally:
            self._index(code)
            if handler is not None:
                logging.getLogger().removeHandler(handler)
            if self.local_lock is not None:
                self.local_lock.close()
        if self.interrupted:
            raise KeyboardInterrupt
        return code

    def _index(self, code: int) -> None:
        """List this run, with its exit code, in store/index.json."""
        if self.run_dir is None:
            return
        from .storeindex import record

        try:
            record(Path(self.opts.store), self.run_dir.path, exit_code=code)
        except OSError as e:
            log.warning("could not update the store index: %s", e)

    def _phase(self, name: str) -> None:
        """What the run is doing now: shown live, and logged so harness.log times each phase."""
        self.state.phase = name
        log.info("phase: %s", name)

    def options(self) -> dict[str, Any]:
        """The test's options as one flat mapping (what workloads and test.json see)."""
        flat = asdict(self.opts)
        flat.update(flat.pop("specific"))
        return flat

    def hold_local_lock(self, prefix: str) -> None:
        """One test at a time per local cluster: two would share its namespaces."""
        import fcntl

        path = Path("/var/lib/zkchaos")
        path.mkdir(parents=True, exist_ok=True)
        lock = open(path / f"test-{prefix}.lock", "w")
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

        self._phase("provisioning")
        self.nodes = provision(self.opts, self._say, self)
        self._phase("checking the hosts")
        prepare_hosts(self.nodes, self.workspace, self._needs)
        # test.json names the nodes actually used (a local cluster's are made up here).
        record = self.run_dir.read_json(self.run_dir.test_json)
        record["nodes"] = [f"{n.name}={n.address}" if n.name != n.address else n.name for n in self.nodes]
        self.run_dir.write_json(self.run_dir.test_json, record)

    def _needs(self, node: Node) -> Needs:
        """What this run needs of a host: the DB's needs and every fault family's."""
        return reduce(lambda a, b: a | b, (n.needs for n in self.nemeses), self.db.needs(node))

    def _start_db(self) -> None:
        from nemesis.base import NemesisContext

        self._phase(f"installing {self.opts.db}")
        self.db.prepare(self.nodes)
        self.ctx = NemesisContext(self.nodes, self.db, random.Random(self.rng.random()), self.options(),
                                  self.opts.nemesis_targets)
        for family in self.nemeses:  # before the servers start: a family may set them up its way
            family.setup(self.ctx)
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            list(pool.map(lambda n: self.db.setup(n, self.nodes), self.nodes))
            list(pool.map(self.db.start, self.nodes))
        self._phase("waiting for a healthy ensemble")
        self.db.wait_ready(self.nodes, timeout=120)
        leader = self.db.leader(self.nodes)
        self._say(f"{self.opts.db} serving on {len(self.nodes)} nodes; leader {leader.name if leader else '-'}")

    def _workload(self) -> None:
        from nemesis.schedule import Schedule

        opts = self.opts
        self.generator = self.workload.generator(self.options(), random.Random(self.rng.random()))
        limiter = RateLimiter(opts.rate)
        self.schedule = Schedule(self.nemeses, self.ctx, self.history, opts.nemesis_interval)
        workers = self.workers = [
            threading.Thread(target=self._worker, args=(i, limiter), daemon=True) for i in range(opts.concurrency)
        ]
        nemesis_thread = threading.Thread(target=self.schedule.run, args=(self.stop,), daemon=True)
        self.state.started = time.monotonic()
        self._phase("running")
        for t in workers:
            t.start()
        nemesis_thread.start()
        from reports.terminal import follow_progress

        follow_progress(self, opts.time_limit)
        self._phase("stopping the clients")
        self.stop.set()
        nemesis_thread.join(timeout=max(opts.nemesis_interval) + 60)
        # One deadline for all workers: an op in flight takes at most a few op timeouts.
        deadline = time.monotonic() + 3 * opts.op_timeout + 10
        for t in workers:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
        self._phase("healing")
        self.faults_left = self.schedule.teardown()
        self._phase("recovering")
        try:
            self.db.wait_ready(self.nodes, timeout=opts.recovery_time)
        except TimeoutError as e:
            self._say(f"[yellow]not healthy after healing:[/] {escape(str(e))}")
        self._phase("final phase")
        self._final_phase()

    def _open_client(self, node: Node, until: float | None) -> Client | None:
        """A workload client connected through `node`; retried (the node may be down) until
        `until`, or until the run stops when None."""
        while True:
            client = self.workload.client(self.options())
            try:
                client.open(node, self.nodes)
                return client
            except Exception as e:  # noqa: BLE001 - down, partitioned, paused: try again
                client.close()
                gave_up = time.monotonic() >= until if until is not None else self.stop.is_set()
                if gave_up:
                    log.info("no client session through %s: %s", node.name, e)
                    return None
                time.sleep(0.5)

    def _run_op(self, client: Client, generator, process: int, node: Node, op: tuple[str, Any],
                final: bool = False) -> str:
        f, value = op
        inv = self.history.invoke(process, client.server() or node.name, f, value, session=client.session(),
                                  final=final, session_epoch=client.session_epoch())
        done = client.invoke(f, value)
        self.history.complete(inv, done.type, value=done.value, error=done.error, zxid=done.zxid,
                              session=client.session(), node=client.server(),
                              session_epoch=client.session_epoch())
        generator.update(process, f, value, done)
        return done.type

    def _worker(self, i: int, limiter: RateLimiter) -> None:
        node = self.nodes[i % len(self.nodes)]
        process = i
        client = self._open_client(node, None)
        if client is None:
            return
        self.ctx.clients.append(client)  # client-side faults act on live clients
        try:
            while limiter.wait(self.stop):
                op = self.generator.next(process)
                if op is None:
                    break
                outcome = self._run_op(client, self.generator, process, node, op)
                self.state.count(outcome)
                if outcome == INFO:
                    # The op may still take effect later; this process is done with it, and a
                    # new process id keeps "at most one op open per process" true.
                    process += self.opts.concurrency
        finally:
            self.ctx.clients.remove(client)
            client.close()

    def _final_phase(self) -> None:
        """After healing: the workload's final generator through every node (final reads,
        a drain), each op marked final in the history."""
        if self.workload.final_generator is None:
            return
        process = FINAL_READ_PROCESS  # far above any worker's process id
        for node in self.nodes * self.workload.final_rounds:
            client = self._open_client(node, time.monotonic() + max(self.opts.recovery_time, self.opts.op_timeout))
            if client is None:
                self._say(f"[yellow]final phase: cannot reach {node.name}[/]")
                continue
            generator = self.workload.final_generator(self.options(), node)
            try:
                while (op := generator.next(process)) is not None:
                    self._run_op(client, generator, process, node, op, final=True)
                    process += 1
            finally:
                client.close()

    def _check(self) -> int:
        from .analysis import analyze_run

        results = analyze_run(self.run_dir, self.history.records, self.options(), self.console,
                              teardown_problems=self.teardown_problems)
        return exit_code(results["valid"])

    def _cleanup(self) -> None:
        """Every step attempted whatever the others do: heal, collect logs, teardown."""
        self.stop.set()
        self._phase("tearing down")
        try:
            if self.schedule is not None:
                self.faults_left = self.schedule.teardown()
            elif self.ctx is not None:  # failed before the schedule began: families set up still undo
                for family in self.nemeses:
                    family.teardown(self.ctx)
        except BaseException as e:  # noqa: BLE001
            log.warning("final heal failed: %s", e)
        for line in self.faults_left:
            self._say(f"[red]fault still in place after healing:[/] {escape(line)}")
        if self.run_dir is None:
            return
        from .provision import collect_and_teardown

        self.teardown_problems = collect_and_teardown(self, self.run_dir)
        for line in self.teardown_problems:
            self._say(f"[yellow]teardown:[/] {escape(line)}")
