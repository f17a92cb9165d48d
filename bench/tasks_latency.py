"""Benchmark: task latency (create to RUNNING, create to final) and throughput, next to Docker.

Run: `.venv/bin/python bench/tasks_latency.py [--repeat 10] [--throughput 200]`. Needs a Docker
engine and `dockyard/busybox:test` (`.ci/docker-engine.sh`). Provisions a throwaway
TestEnvironment and starts the real engine processes (`dockyard relay tasks`, `dockyard consume
tasks`, the Celery worker, the monitor) at the default settings, then for `echo hi`:
`service.create_task` until the row says RUNNING and until SUCCEEDED (polled every 10 ms), next to
`docker run --rm` and the SDK's bare create/start/wait/remove of the same image and command
(medians over --repeat), and the tasks/min of --throughput tasks created at once.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import docker
from sqlalchemy import func, select
from support import BIN, spawn, stop

from services.tasks import service
from services.tasks.app import create_app
from services.tasks.lifecycle import TERMINAL
from services.tasks.models import Task
from shared.testing import TestEnvironment

IMAGE = os.environ.get("DOCKYARD_TEST_IMAGE", "dockyard/busybox:test")
COMMAND = ["echo", "hi"]


def start_engine(env: dict[str, str], logs: Path, processes: list[subprocess.Popen]) -> None:
    """Start the relay, consumer, Celery worker and monitor (output in `logs`) into `processes`."""
    commands = {
        "relay": [str(BIN / "dockyard"), "relay", "tasks"],
        "consume": [str(BIN / "dockyard"), "consume", "tasks"],
        "worker": [
            str(BIN / "celery"),
            "-A",
            "services.tasks.worker:celery_app",
            "worker",
            "-c",
            "4",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "INFO",
        ],
        "monitor": [sys.executable, "-m", "services.tasks.monitor"],
    }
    for name, argv in commands.items():
        processes.append(spawn(argv, env=env, log=logs / f"{name}.log"))
    deadline = time.monotonic() + 30
    markers = {"consume": "consumer started", "worker": "ready.", "monitor": "monitor leads"}
    while any(m not in (logs / f"{n}.log").read_text(errors="replace") for n, m in markers.items()):
        if time.monotonic() > deadline:
            raise SystemExit(f"engine processes did not start; see {logs}")
        time.sleep(0.1)


def status_times(uow_factory, task_id: uuid.UUID, started: float) -> tuple[float, float]:
    """Seconds from `started` until the task is RUNNING (or beyond) and until it is final."""
    running = None
    while True:
        with uow_factory() as uow:
            status = uow.session.scalar(select(Task.status).where(Task.id == task_id))
        now = time.perf_counter()
        if running is None and status not in ("PENDING", "QUEUED"):
            running = now - started
        if status in TERMINAL:
            return running, now - started
        time.sleep(0.01)


def bench_service(ctx, repeat: int) -> tuple[list[float], list[float]]:
    """create_task to RUNNING and to SUCCEEDED, one task at a time."""
    to_running, to_final = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        view = service.create_task(
            ctx.uow(), policy=ctx.policy, owner_id=uuid.uuid4(), image=IMAGE, command=COMMAND
        )
        running, final = status_times(ctx.uow, uuid.UUID(view.id), started)
        to_running.append(running)
        to_final.append(final)
    return to_running, to_final


def bench_docker_run(repeat: int) -> list[float]:
    """`docker run --rm` of the same image and command."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(
            ["docker", "run", "--rm", "--network", "none", IMAGE, *COMMAND],
            check=True,
            capture_output=True,
        )
        times.append(time.perf_counter() - started)
    return times


def bench_sdk(repeat: int) -> list[float]:
    """The SDK's bare create, start, wait, logs and remove."""
    client = docker.from_env(version="auto")
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        container = client.containers.create(IMAGE, COMMAND, network_mode="none")
        container.start()
        container.wait()
        container.logs()
        container.remove()
        times.append(time.perf_counter() - started)
    return times


def bench_throughput(ctx, count: int) -> float:
    """Tasks per minute for `count` tasks created at once."""
    owner = uuid.uuid4()
    started = time.perf_counter()
    for _ in range(count):
        service.create_task(
            ctx.uow(), policy=ctx.policy, owner_id=owner, image=IMAGE, command=COMMAND
        )
    while True:
        with ctx.uow() as uow:
            done = uow.session.scalar(
                select(func.count())
                .select_from(Task)
                .where(Task.owner_id == owner, Task.status.in_(list(TERMINAL)))
            )
        if done >= count:
            break
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    return count / elapsed * 60


def main() -> None:
    """Run every measurement and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--throughput", type=int, default=200)
    args = parser.parse_args()
    with TestEnvironment() as environment:
        logs = Path(tempfile.mkdtemp(prefix="dockyard-bench-tasks-"))
        # Filled as they start, so a failed start-up still stops those already running.
        processes: list[subprocess.Popen] = []
        try:
            start_engine({**os.environ, **environment.env()}, logs, processes)
            ctx = create_app().extensions["tasks"]
            bench_service(ctx, 2)  # warm up every process
            to_running, to_final = bench_service(ctx, args.repeat)
            run = statistics.median(bench_docker_run(args.repeat))
            sdk = statistics.median(bench_sdk(args.repeat))
            running, final = statistics.median(to_running), statistics.median(to_final)
            print(f"image {IMAGE}, command {' '.join(COMMAND)}, medians of {args.repeat}")
            print(f"  service: create -> RUNNING   {running * 1000:8.1f} ms")
            print(f"  service: create -> SUCCEEDED {final * 1000:8.1f} ms")
            print(f"  docker run --rm              {run * 1000:8.1f} ms")
            print(f"  SDK create/start/wait/remove {sdk * 1000:8.1f} ms")
            print(f"  ratio service final / docker run: {final / run:5.2f}x")
            print(f"  ratio service final / SDK:        {final / sdk:5.2f}x")
            rate = bench_throughput(ctx, args.throughput)
            print(
                f"throughput: {args.throughput} tasks at the default concurrency: "
                f"{rate:.0f} tasks/min"
            )
        finally:
            stop(*processes)
            print(f"(engine process logs: {logs})")


if __name__ == "__main__":
    main()
