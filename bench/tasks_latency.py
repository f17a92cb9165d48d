"""Benchmark: task latency (create to RUNNING, create to final) and throughput, next to Docker.

Run: `.venv/bin/python bench/tasks_latency.py [--pairs 20] [--throughput 200]`. Needs a Docker
engine and `dockyard/busybox:test` (`.ci/docker-engine.sh`). Provisions a throwaway
TestEnvironment and starts the real engine processes (`dockyard relay tasks`, `dockyard consume
tasks`, the Celery worker, the monitor) at the default settings, as `make up` runs them.

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
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker
from results import record
from sqlalchemy import func
from sqlalchemy import select as sql_select
from support import BIN, spawn, stop

from services.registry import REGISTRY
from services.tasks import service
from services.tasks.app import create_app
from services.tasks.launcher import Listener
from services.tasks.lifecycle import TERMINAL
from services.tasks.models import SCHEMA, Task
from shared.db import outbox_channel
from shared.processes import ManagedProcess
from shared.testing import TestEnvironment

IMAGE = os.environ.get("DOCKYARD_TEST_IMAGE", "dockyard/busybox:test")
COMMAND = ["echo", "hi"]
#: Containers the engine runs at each concurrency tried for its own throughput.
ENGINE_RUNS_PER_LEVEL = 48


def start_engine(env: dict[str, str], logs: Path, processes: list[ManagedProcess]) -> None:
    """Start the relay, consumer, Celery worker and monitor (output in `logs`) into `processes`."""
    commands = {
        "relay": [str(BIN / "dockyard"), "relay", "tasks"],
        "consume": [str(BIN / "dockyard"), "consume", "tasks"],
        # As the Procfile runs it.
        "worker": [
            str(BIN / "celery"), "-A", "services.tasks.worker:celery_app", "worker",
            "--concurrency", "8", "--without-gossip", "--without-mingle", "--without-heartbeat",
            "-l", "INFO",
        ],
        "monitor": [sys.executable, "-m", "services.tasks.monitor"],
    }  # fmt: skip
    for name, argv in commands.items():
        processes.append(spawn(argv, env=env, log=logs / f"{name}.log"))
    deadline = time.monotonic() + 30
    markers = {"consume": "consumer started", "worker": "ready.", "monitor": "monitor leads"}
    while any(m not in (logs / f"{n}.log").read_text(errors="replace") for n, m in markers.items()):
        if time.monotonic() > deadline:
            raise SystemExit(f"engine processes did not start; see {logs}")
        time.sleep(0.1)


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


def one_task(ctx, signal: Listener) -> tuple[float, float]:
    """create_task to RUNNING and to SUCCEEDED for one task."""
    signal.forget()
    started = time.perf_counter()
    view = service.create_task(
        ctx.uow(), policy=ctx.policy, owner_id=uuid.uuid4(), image=IMAGE, command=COMMAND
    )
    return status_times(ctx, uuid.UUID(view.id), started, signal)


def one_docker_run() -> float:
    """`docker run --rm --network none` of the same image and command."""
    started = time.perf_counter()
    subprocess.run(
        ["docker", "run", "--rm", "--network", "none", IMAGE, *COMMAND],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def bench_latency(ctx, pairs: int) -> tuple[list[float], list[float], list[float]]:
    """Alternating pairs of one task and one docker run: to RUNNING, to final, docker run."""
    signal = Listener(ctx.database, outbox_channel(SCHEMA))
    try:
        to_running, to_final, runs = [], [], []
        for _ in range(pairs):
            running, final = one_task(ctx, signal)
            to_running.append(running)
            to_final.append(final)
            runs.append(one_docker_run())
        return to_running, to_final, runs
    finally:
        signal.close()


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
        service.create_task(ctx.uow(), policy=policy, owner_id=owner, image=IMAGE, command=COMMAND)
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
    args = parser.parse_args()
    levels = [int(level) for level in args.engine_concurrency.split(",")]
    with TestEnvironment(REGISTRY) as environment:
        logs = Path(tempfile.mkdtemp(prefix="dockyard-bench-tasks-"))
        # Filled as they start, so a failed start-up still stops those already running.
        processes: list[ManagedProcess] = []
        try:
            start_engine({**os.environ, **environment.env()}, logs, processes)
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
            rates = {level: engine_rate(client, level, ENGINE_RUNS_PER_LEVEL) for level in levels}
            client.close()
            print(
                "  engine alone: " + ", ".join(f"{c} at once {r:.2f}/s" for c, r in rates.items())
            )
            best = max(rates, key=rates.get)
            record(
                "tasks_throughput",
                f"{args.throughput} tasks at once",
                service_rate(ctx, args.throughput),
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
