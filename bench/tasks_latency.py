"""Benchmark: task latency (create to RUNNING, create to final) and throughput, next to Docker.

Run: `.venv/bin/python bench/tasks_latency.py [--pairs 20] [--throughput 200]`. Needs a Docker
engine and `dockyard/busybox:test` (`.ci/docker-engine.sh`). Provisions a throwaway
TestEnvironment and starts the real engine processes (`dockyard relay tasks`, `dockyard consume
tasks`, the launcher, the Celery worker, the monitor) at the default settings, as `make up` runs
them.

Latency, for `echo hi`: --pairs alternating pairs of one task (`service.create_task` until the
row says RUNNING and until SUCCEEDED, each status change observed through the outbox's
LISTEN/NOTIFY channel, which every transition's commit signals) and one `docker run --rm
--network none` of the same image and command; medians. Throughput: --throughput tasks created
at once until all are final, next to the engine's own rate (the SDK's create/start/wait/remove
from a thread pool) at its best concurrency among --engine-concurrency.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import docker
from results import record
from sqlalchemy import func
from sqlalchemy import select as sql_select
from support import BIN, spawn, stop

from services.registry import REGISTRY
from services.tasks import service
from services.tasks.app import create_app
from services.tasks.containers import LABEL_TASK
from services.tasks.launcher import Listener
from services.tasks.lifecycle import TERMINAL
from services.tasks.models import SCHEMA, Task
from shared.db import outbox_channel
from shared.messaging.broker import close_quietly, connect, drain_available, wait_readable
from shared.messaging.topology import Topology
from shared.messaging.wire import envelope_from_message
from shared.processes import ManagedProcess
from shared.testing import TestEnvironment

IMAGE = os.environ.get("DOCKYARD_TEST_IMAGE", "dockyard/busybox:test")
COMMAND = ["echo", "hi"]
#: The task every run submits.
SPEC = service.TaskSpec(image=IMAGE, command=COMMAND)
#: Labels the docker run baseline's containers, so the bench can follow their events.
RUN_LABEL = "dockyard.bench-run"
#: Containers the engine runs at each concurrency tried for its own throughput.
ENGINE_RUNS_PER_LEVEL = 48


def start_engine(
    env: dict[str, str], logs: Path, processes: list[ManagedProcess]
) -> dict[str, int]:
    """Start the relay, consumer, launcher, worker and monitor (output in `logs`) into `processes`.

    Returns their process ids by name.
    """
    commands = {
        "relay": [str(BIN / "dockyard"), "relay", "tasks"],
        "consume": [str(BIN / "dockyard"), "consume", "tasks"],
        "launcher": [sys.executable, "-m", "services.tasks.launcher"],
        # As the Procfile runs it.
        "worker": [
            str(BIN / "celery"), "-A", "services.tasks.worker:celery_app", "worker",
            "--concurrency", "8", "--without-gossip", "--without-mingle", "--without-heartbeat",
            "-l", "INFO",
        ],
        "monitor": [sys.executable, "-m", "services.tasks.monitor"],
    }  # fmt: skip
    pids = {}
    for name, argv in commands.items():
        processes.append(spawn(argv, env=env, log=logs / f"{name}.log"))
        pids[name] = processes[-1].pid
    deadline = time.monotonic() + 30
    markers = {
        "consume": "consumer started",
        "launcher": "launcher started",
        "worker": "ready.",
        "monitor": "monitor leads",
    }
    while any(m not in (logs / f"{n}.log").read_text(errors="replace") for n, m in markers.items()):
        if time.monotonic() > deadline:
            raise SystemExit(f"engine processes did not start; see {logs}")
        time.sleep(0.1)
    return pids


class StepClock:
    """When each step of a task's start and finish happened, from outside the processes.

    Follows the broker (an exclusive queue bound to `tasks.*`: when the relay published each
    event) and the engine's container events (create, start, die, destroy, by the engine's
    clock); the database gives the launcher's claim (`queued_at`). All clocks are this
    machine's.
    """

    def __init__(self, ctx, client: docker.DockerClient, namespace: str, amqp_url: str) -> None:
        self.ctx = ctx
        self.client = client
        self.namespace = namespace
        self.amqp_url = amqp_url
        #: (task id, event type or container action) -> (epoch seconds, event id)
        self.seen: dict[tuple[str, str], tuple[float, str]] = {}
        self.ready = threading.Barrier(3)
        self.stopping = threading.Event()

    def start(self) -> None:
        """Follow the broker and the engine in two daemon threads."""
        threading.Thread(target=self._follow_broker, daemon=True).start()
        threading.Thread(target=self._follow_engine, daemon=True).start()
        self.ready.wait(timeout=30)

    def stop(self) -> None:
        """Stop following the broker (its queue goes with the connection)."""
        self.stopping.set()

    def _follow_broker(self) -> None:
        connection = connect(self.amqp_url, name="bench-steps")
        channel = connection.channel()
        topology = Topology(self.namespace)
        topology.declare_events(channel)
        queue, _, _ = channel.queue_declare("", exclusive=True, auto_delete=True)
        channel.queue_bind(queue, topology.events_exchange, "tasks.*")

        def on_message(message) -> None:
            envelope = envelope_from_message(message)
            task_id = envelope.payload.get("task_id")
            if task_id is not None:  # tasks' events about other things (schedules, replicas)
                self.seen.setdefault((task_id, envelope.type), (time.time(), envelope.id))

        channel.basic_consume(queue, callback=on_message, no_ack=True)
        self.ready.wait()
        while not self.stopping.is_set():
            if wait_readable(connection, 0.5):
                drain_available(connection)
            connection.heartbeat_tick()
        close_quietly(connection)

    def _follow_engine(self) -> None:
        # Not filtered by label: the docker run baseline's containers are followed too.
        filters = {"type": ["container"], "event": ["create", "start", "die", "destroy"]}
        events = self.client.api.events(filters=filters, decode=True)
        self.ready.wait()
        for event in events:
            attributes = (event.get("Actor") or {}).get("Attributes") or {}
            owner = attributes.get(LABEL_TASK) or attributes.get(RUN_LABEL)
            if owner:
                key = (owner, event.get("Action") or event.get("status"))
                self.seen.setdefault(key, (event["timeNano"] / 1e9, ""))

    def run_steps(self, run_id: str, begun: float, ended: float) -> dict[str, float]:
        """Milliseconds from a docker run's call to each of its container's events, and its end."""
        steps = {
            action: (self.seen[(run_id, action)][0] - begun) * 1000
            for action in ("create", "start", "die", "destroy")
            if (run_id, action) in self.seen
        }
        return {**steps, "exited": (ended - begun) * 1000}

    def steps(self, task_id: str, begun: float, committed: float) -> dict[str, float]:
        """Milliseconds from the createTask call to each step of the task."""
        with self.ctx.uow() as uow:
            row = uow.session.execute(
                sql_select(Task.queued_at, Task.started_at, Task.finished_at).where(
                    Task.id == uuid.UUID(task_id)
                )
            ).one()

        def at(key: str) -> float | None:
            found = self.seen.get((task_id, key))
            return found[0] if found else None

        def epoch(moment: datetime | None) -> float | None:
            return moment.timestamp() if moment is not None else None

        points = {
            "create_task committed": committed,
            "TaskCreated published (seen on the broker)": at("TaskCreated"),
            "launcher claimed the task (QUEUED)": epoch(row.queued_at),
            "engine: container created": at("create"),
            "engine: container started (start event)": at("start"),
            "TaskStarted published (RUNNING committed)": at("TaskStarted"),
            "engine: container died": at("die"),
            "TaskSucceeded published (SUCCEEDED committed)": at("TaskSucceeded"),
            "engine: container removed": at("destroy"),
        }
        return {
            name: (moment - begun) * 1000 for name, moment in points.items() if moment is not None
        }


def print_steps(samples: list[dict[str, float]], runs: list[dict[str, float]]) -> None:
    """Median milliseconds from the createTask call to each step, beside docker run's own."""
    print("  steps of a task (median ms after the createTask call; step = since the one above):")
    by_step: dict[str, list[float]] = defaultdict(list)
    for sample in samples:
        for name, value in sample.items():
            by_step[name].append(value)
    previous = 0.0
    for name, values in by_step.items():
        median = statistics.median(values)
        print(f"    {median:7.1f}  (+{median - previous:6.1f})  {name}")
        previous = median
    if runs:
        print("  docker run --rm (median ms after it was called):")
        for name in ("create", "start", "die", "destroy", "exited"):
            values = [run[name] for run in runs if name in run]
            if values:
                print(f"    {statistics.median(values):7.1f}  {name}")


def status_times(ctx, task_id: uuid.UUID, started: float, signal: Listener) -> tuple[float, float]:
    """Seconds from `started` until the task is RUNNING (or beyond) and until it is final."""
    running = None
    while True:
        with ctx.uow() as uow:
            status = uow.session.scalar(sql_select(Task.status).where(Task.id == task_id))
        now = time.perf_counter()
        if running is None and status not in ("PENDING", "QUEUED"):
            running = now - started
        if status in TERMINAL:
            return running, now - started
        # Every transition commits an outbox row, which signals the channel; the timeout only
        # guards against a lost signal.
        signal.wait(1.0)


def one_task(ctx, signal: Listener, clock: StepClock | None) -> tuple[float, float, dict]:
    """create_task to RUNNING and to SUCCEEDED for one task, and its steps if `clock`."""
    signal.forget()
    begun = time.time()
    started = time.perf_counter()
    view = service.create_task(ctx.uow(), policy=ctx.policy, owner_id=uuid.uuid4(), spec=SPEC)
    committed = time.time()
    running, final = status_times(ctx, uuid.UUID(view.id), started, signal)
    if clock is None:
        return running, final, {}
    time.sleep(0.1)  # the container's removal and the last events
    steps = clock.steps(view.id, begun, committed)
    steps["RUNNING seen by the bench"] = running * 1000
    steps["SUCCEEDED seen by the bench"] = final * 1000
    return running, final, dict(sorted(steps.items(), key=lambda item: item[1]))


def one_docker_run(clock: StepClock | None) -> tuple[float, dict]:
    """`docker run --rm --network none` of the same image and command, and its steps."""
    run_id = uuid.uuid4().hex
    begun = time.time()
    started = time.perf_counter()
    subprocess.run(
        ["docker", "run", "--rm", "--network", "none", "--label", f"{RUN_LABEL}={run_id}"]
        + [IMAGE, *COMMAND],
        check=True,
        capture_output=True,
    )
    elapsed = time.perf_counter() - started
    if clock is None:
        return elapsed, {}
    time.sleep(0.05)
    return elapsed, clock.run_steps(run_id, begun, begun + elapsed)


def bench_latency(
    ctx, pairs: int, clock: StepClock | None = None
) -> tuple[list[float], list[float], list[float]]:
    """Alternating pairs of one task and one docker run: to RUNNING, to final, docker run."""
    signal = Listener(ctx.database, outbox_channel(SCHEMA))
    try:
        to_running, to_final, runs, task_steps, run_steps = [], [], [], [], []
        for _ in range(pairs):
            running, final, steps = one_task(ctx, signal, clock)
            to_running.append(running)
            to_final.append(final)
            task_steps.append(steps)
            run, steps = one_docker_run(clock)
            runs.append(run)
            run_steps.append(steps)
        if clock is not None:
            print_steps(task_steps, run_steps)
        return to_running, to_final, runs
    finally:
        signal.close()


#: Processes outside Dockyard whose CPU a task also costs, by their command name.
SYSTEM_PROCESSES = ("dockerd", "containerd", "containerd-shim", "runc", "postgres", "beam.smp")
_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[str, int, float] | None:
    """A process's command name, parent and CPU seconds (its own and its reaped children's)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    return name, int(fields[1]), sum(int(value) for value in fields[11:15]) / _TICK


def cpu_by_process(ours: dict[str, int]) -> dict[str, float]:
    """CPU seconds so far of each of `ours` (with its descendants) and of SYSTEM_PROCESSES."""
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))) is not None:
            stats[int(entry)] = stat
    children: dict[int, list[int]] = defaultdict(list)
    for pid, (_name, parent, _cpu) in stats.items():
        children[parent].append(pid)

    listed = set(ours.values())

    def tree(pid: int) -> float:
        own = stats[pid][2] if pid in stats else 0.0
        # Another of `ours` below this one (the engine processes are the bench's children) is
        # counted under its own name only.
        return own + sum(tree(child) for child in children[pid] if child not in listed)

    totals = {name: tree(pid) for name, pid in ours.items()}
    for name in SYSTEM_PROCESSES:
        totals[name] = sum(cpu for own, _p, cpu in stats.values() if own.startswith(name))
    return totals


def print_cpu(before: dict[str, float], after: dict[str, float], count: int, what: str) -> None:
    """CPU milliseconds per task (or container) of each process between two samples."""
    spent = {name: (after[name] - before.get(name, 0.0)) * 1000 / count for name in after}
    ours = sum(
        value
        for name, value in spent.items()
        if name not in SYSTEM_PROCESSES and not name.startswith("bench")
    )
    shown = ", ".join(f"{name} {value:.1f}" for name, value in spent.items() if value >= 0.05)
    print(f"  CPU ms per {what} (machine shared; system processes include others'): {shown}")
    print(f"    Dockyard's engine processes (not the bench): {ours:.1f} ms per {what}")


def engine_rate(client: docker.DockerClient, concurrency: int, count: int) -> float:
    """Containers per second the SDK's create/start/wait/remove gets at `concurrency`."""

    def run_one(_index: int) -> None:
        container = client.containers.create(IMAGE, COMMAND, network_mode="none")
        container.start()
        container.wait()
        container.remove()

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(run_one, range(count)))
    return count / (time.perf_counter() - started)


def service_rate(ctx, count: int) -> float:
    """Tasks per second for `count` tasks created at once, until every one is final."""
    owner = uuid.uuid4()
    # One owner submits them all: the per-user cap on unfinished tasks would stop it at 100.
    policy = dataclasses.replace(ctx.policy, max_active_tasks_per_user=None)
    started = time.perf_counter()
    for _ in range(count):
        service.create_task(ctx.uow(), policy=policy, owner_id=owner, spec=SPEC)
    while True:
        with ctx.uow() as uow:
            done = uow.session.scalar(
                sql_select(func.count())
                .select_from(Task)
                .where(Task.owner_id == owner, Task.status.in_(list(TERMINAL)))
            )
        if done >= count:
            return count / (time.perf_counter() - started)
        time.sleep(0.05)


def main() -> None:
    """Run every measurement and record the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--throughput", type=int, default=200)
    parser.add_argument("--engine-concurrency", default="1,2,4,8,16")
    parser.add_argument("--steps", type=int, default=10, help="pairs timed step by step")
    args = parser.parse_args()
    levels = [int(level) for level in args.engine_concurrency.split(",")]
    with TestEnvironment(REGISTRY) as environment:
        logs = Path(tempfile.mkdtemp(prefix="dockyard-bench-tasks-"))
        # Filled as they start, so a failed start-up still stops those already running.
        processes: list[ManagedProcess] = []
        try:
            env = {**os.environ, **environment.env()}
            ours = start_engine(env, logs, processes)
            ours["bench (create_task, polling: the API's part)"] = os.getpid()
            ctx = create_app().extensions["tasks"]
            bench_latency(ctx, 2)  # warm up every process
            to_running, to_final, runs = bench_latency(ctx, args.pairs)
            running, final = statistics.median(to_running), statistics.median(to_final)
            run = statistics.median(runs)
            print(f"image {IMAGE}, command {' '.join(COMMAND)}, medians of {args.pairs} pairs")
            label = "docker run --rm"
            for metric, figure, target in (
                ("createTask -> RUNNING", running, 0.6),
                ("createTask -> SUCCEEDED", final, 1.0),
            ):
                record(
                    "tasks_latency", metric, figure * 1000, "ms",
                    baseline=run * 1000, baseline_label=label, target=target, better="lower",
                )  # fmt: skip
            client = docker.from_env(version="auto")
            if args.steps:
                # Its own pairs: the clock's queue makes the bench one more event consumer.
                clock = StepClock(ctx, client, environment.namespace, env["AMQP_URL"])
                clock.start()
                bench_latency(ctx, args.steps, clock)
                clock.stop()
            rates, engine_cpu = {}, {}
            for level in levels:
                before = cpu_by_process({})
                rates[level] = engine_rate(client, level, ENGINE_RUNS_PER_LEVEL)
                engine_cpu[level] = (before, cpu_by_process({}))
            print(
                "  engine alone: " + ", ".join(f"{c} at once {r:.2f}/s" for c, r in rates.items())
            )
            best = max(rates, key=rates.get)
            print_cpu(*engine_cpu[best], ENGINE_RUNS_PER_LEVEL, f"container ({best} at once)")
            before = cpu_by_process(ours)
            rate = service_rate(ctx, args.throughput)
            print_cpu(before, cpu_by_process(ours), args.throughput, "task")
            client.close()
            record(
                "tasks_throughput",
                f"{args.throughput} tasks at once",
                rate,
                "tasks/s",
                baseline=rates[best],
                baseline_label=f"engine create/start/wait/remove, {best} at once",
                target=0.9,
            )
        finally:
            stop(*processes)
            print(f"(engine process logs: {logs})")


if __name__ == "__main__":
    main()
