"""Benchmark: a workflow of 100 trivial steps, creation to finished, next to raw `docker run`.

Run: `.venv/bin/python bench/workflow.py [--fan-out 50] [--chain 49]`. Needs a Docker engine and
`dockyard/busybox:test` (`.ci/docker-engine.sh`). Provisions a throwaway TestEnvironment and
starts the real engine processes (bench/tasks_latency.py's `start_engine`).

The DAG: --fan-out steps at once, one step joining them, then a chain of --chain steps (100 in
all by default), each `true`. Timed from `workflows.create_workflow` until the workflow's
finishedAt is set (polled every 20 ms). The baseline runs the same containers with `docker run
--rm --network none` in the same order at the same concurrency: the fan-out with as many at once
as the engine's TASKS_WORKER_CONCURRENCY, then the join, then the chain one after the other.
The figure: milliseconds per step over the baseline's (target: at most 50 ms).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from results import record
from support import stop
from tasks_latency import IMAGE, start_engine

from services.registry import REGISTRY
from services.tasks import workflows
from services.tasks.app import create_app
from services.tasks.models import Workflow
from shared.processes import ManagedProcess
from shared.testing import TestEnvironment

COMMAND = ["true"]


def dag(fan_out: int, chain: int) -> list[dict]:
    """The steps: `fan_out` at once, a join of them all, then a chain of `chain`."""
    task = {"image": IMAGE, "command": COMMAND, "max_retries": 0}
    steps = [{"name": f"fan-{n}", "task": task, "depends_on": []} for n in range(fan_out)]
    steps.append({"name": "join", "task": task, "depends_on": [s["name"] for s in steps]})
    previous = "join"
    for n in range(chain):
        steps.append({"name": f"chain-{n}", "task": task, "depends_on": [previous]})
        previous = f"chain-{n}"
    return steps


def run_workflow(ctx, steps: list[dict]) -> float:
    """Seconds from create_workflow until the workflow finished."""
    policy = dataclasses.replace(ctx.policy, max_active_tasks_per_user=None)
    started = time.perf_counter()
    created = workflows.create_workflow(
        ctx.uow(), policy=policy, owner_id=uuid.uuid4(), steps=steps, max_steps=len(steps)
    )
    while True:
        with ctx.uow() as uow:
            finished = uow.session.get(Workflow, uuid.UUID(created.id)).finished_at
        if finished is not None:
            return time.perf_counter() - started
        time.sleep(0.02)


def docker_run() -> None:
    """One raw container run of the step's image and command."""
    subprocess.run(
        ["docker", "run", "--rm", "--network", "none", IMAGE, *COMMAND],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def run_raw(fan_out: int, chain: int, concurrency: int) -> float:
    """Seconds for the same containers by `docker run`, in the same order and concurrency."""
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda _n: docker_run(), range(fan_out)))
    docker_run()
    for _ in range(chain):
        docker_run()
    return time.perf_counter() - started


def main() -> None:
    """Run the workflow and the baseline, and record the overhead per step."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fan-out", type=int, default=50)
    parser.add_argument("--chain", type=int, default=49)
    args = parser.parse_args()
    steps = dag(args.fan_out, args.chain)
    with TestEnvironment(REGISTRY) as environment:
        logs = Path(tempfile.mkdtemp(prefix="dockyard-bench-workflow-"))
        processes: list[ManagedProcess] = []
        try:
            env = {**os.environ, **environment.env()}
            start_engine(env, logs, processes)
            ctx = create_app().extensions["tasks"]
            concurrency = ctx.settings.WORKER_CONCURRENCY
            run_workflow(ctx, dag(2, 2))  # warm up every process
            ours = run_workflow(ctx, steps)
            raw = run_raw(args.fan_out, args.chain, concurrency)
            count = len(steps)
            print(
                f"{count} steps (fan-out {args.fan_out}, join, chain {args.chain}), "
                f"{concurrency} at once: workflow {ours:.2f} s, docker run {raw:.2f} s"
            )
            record(
                "workflow",
                f"{count} steps: ms per step",
                ours * 1000 / count,
                "ms",
                baseline=raw * 1000 / count,
                baseline_label=f"docker run --rm, same order, {concurrency} at once",
                target=50,
                compare="difference",
                better="lower",
            )
        finally:
            stop(*processes)
            print(f"(engine process logs: {logs})")


if __name__ == "__main__":
    main()
