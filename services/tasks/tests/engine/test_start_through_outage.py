"""A task whose start meets a database outage starts within seconds of the database's return.

The processes that start tasks (the launcher, the Celery worker) reach PostgreSQL through a
TcpProxy that the tests cut and restore; the relay and the test's own client go straight to
the shared server, which is never restarted. No monitor runs, so its reconciler (the safety net
that once started such a task a minute late) cannot be what starts it. The module has its own
database and namespace, so the suite's other engine processes cannot start its tasks either.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import docker
import pytest

from services.tasks import dispatch
from services.tasks.app import create_app
from services.tasks.config import TasksSettings
from services.tasks.containers import LABEL_TASK, namespace_filter
from services.tasks.tests.engine.conftest import (
    BIN,
    Process,
    engine_env,
    own_environment,
    wait_for,
    worker_argv,
)
from services.tasks.tests.engine.test_execution import submit, task_of, wait_status
from shared.celery import send_job
from shared.throwaway import TcpProxy

#: Longest the start may take once the database is back (the target is 2 s; the rest is room
#: for a loaded machine). The monitor's safety net would take a minute.
RESUME_BOUND_SECONDS = 5.0
#: Failed start attempts seen before the database comes back.
ATTEMPTS_BEFORE_RETURN = 3


@pytest.fixture(scope="module")
def outage_env() -> Iterator:
    """A database and namespace of this module's own."""
    with own_environment() as environment:
        yield environment


@pytest.fixture(scope="module")
def proxy(outage_env) -> Iterator[TcpProxy]:
    """A cuttable proxy in front of the PostgreSQL server of the module's database."""
    host, _, port = outage_env.pg_host.partition(":")
    proxy = TcpProxy(host, int(port or 5432)).start()
    yield proxy
    proxy.cut()


@pytest.fixture(scope="module")
def outage_client(outage_env, auth_server):
    """A test client of a tasks app on the module's database (straight, not proxied)."""
    app = create_app(TasksSettings(engine_env(outage_env, auth_server)))
    yield app.test_client()
    app.extensions["tasks"].database.dispose()


@pytest.fixture
def start_processes(outage_env, auth_server, proxy, docker_client):
    """Start engine processes by name (proxied ones reach the database through the proxy)."""
    logs = Path(tempfile.mkdtemp(prefix=f"dockyard-outage-{outage_env.run_id}-"))
    commands = {
        "relay": [str(BIN / "dockyard"), "relay", "tasks"],
        "launcher": [sys.executable, "-m", "services.tasks.launcher"],
        "worker": worker_argv(),
    }
    ready = {"relay": "relay started", "launcher": "launcher started", "worker": "ready."}
    proxied_url = proxy.url_for(outage_env.service_url("tasks"))
    with ExitStack() as stack:

        def start(*, straight: tuple[str, ...] = (), proxied: tuple[str, ...] = ()):
            started = {}
            for name in (*straight, *proxied):
                extra = {"TASKS_DATABASE_URL": proxied_url} if name in proxied else {}
                env = engine_env(outage_env, auth_server, **extra)
                process = Process(name, commands[name], env, logs / f"{name}.log")
                started[name] = stack.enter_context(process)
            for name, process in started.items():
                wait_for(
                    lambda p=process, n=name: ready[n] in p.log(),
                    timeout=60,
                    message=f"{name} did not start: {process.log()[-2000:]}",
                )
            return started

        yield start
    for container in docker_client.containers.list(
        all=True, filters=namespace_filter(outage_env.namespace), ignore_removed=True
    ):
        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            pass


def containers_of(docker_client, task_id: str) -> list[str]:
    """The names of every container of the task."""
    return [
        c.name
        for c in docker_client.containers.list(
            all=True, filters={"label": f"{LABEL_TASK}={task_id}"}, ignore_removed=True
        )
    ]


def claimed_and_started(client, user, task_id: str) -> tuple[float, float]:
    """Seconds from now until the task's attempt was claimed, and until it was RUNNING.

    The claim is where the start resumes; the container's start that follows is the Docker
    engine's time, which a loaded machine stretches, so only the claim is held to the bound.
    """
    back = time.monotonic()
    wait_for(
        lambda: task_of(client, user, task_id)["attempts"] >= 1,
        timeout=60,
        message=f"task {task_id} was never claimed",
    )
    claimed = time.monotonic() - back
    wait_status(client, user, task_id, {"RUNNING"}, timeout=60)
    return claimed, time.monotonic() - back


def test_the_launcher_retries_a_start_through_a_database_outage_and_starts_it_once(
    start_processes, proxy, outage_client, register, docker_client
):
    alice = register()
    processes = start_processes(straight=("relay",), proxied=("launcher",))
    launcher = processes["launcher"]
    proxy.cut()
    try:
        task = submit(outage_client, alice, ["sleep", "60"], timeout_seconds=120)
        # The relay publishes its TaskCreated; the launcher's start meets the outage.
        wait_for(
            lambda: launcher.log().count(f"task {task['id']}: start: ") >= ATTEMPTS_BEFORE_RETURN,
            timeout=60,
            message=f"the launcher did not retry the start: {launcher.log()[-3000:]}",
        )
        assert task_of(outage_client, alice, task["id"])["status"] == "PENDING"
    finally:
        proxy.restore()
    resumed, started = claimed_and_started(outage_client, alice, task["id"])
    print(
        f"the launcher claimed the task's attempt {resumed:.2f} s after the database came back"
        f" (RUNNING after {started:.2f} s)"
    )
    assert resumed < RESUME_BOUND_SECONDS
    running = task_of(outage_client, alice, task["id"])
    assert running["attempts"] == 1
    assert containers_of(docker_client, task["id"]) == [f"dockyard-task-{task['id']}-1"]
    log = launcher.log()
    assert f"task {task['id']}: start: reconnected after" in log, log[-3000:]
    assert "handing it to the start job" not in log and "Traceback" not in log, log[-3000:]


def test_the_celery_start_job_retries_through_a_database_outage_and_starts_it_once(
    start_processes, proxy, outage_env, auth_server, outage_client, register, docker_client
):
    alice = register()
    # No relay and no launcher: the start job below is the only thing that starts the task.
    worker = start_processes(proxied=("worker",))["worker"]
    task = submit(outage_client, alice, ["sleep", "60"], timeout_seconds=120)
    proxy.cut()
    try:
        settings = TasksSettings(engine_env(outage_env, auth_server))
        send_job(settings, dispatch.START_TASK, args=[task["id"]])
        wait_for(
            lambda: (
                worker.log().count(f"task {task['id']}: database unavailable")
                >= ATTEMPTS_BEFORE_RETURN
            ),
            timeout=60,
            message=f"the start job was not retried: {worker.log()[-3000:]}",
        )
    finally:
        proxy.restore()
    resumed, started = claimed_and_started(outage_client, alice, task["id"])
    print(
        f"the start job claimed the task's attempt {resumed:.2f} s after the database came back"
        f" (RUNNING after {started:.2f} s)"
    )
    assert resumed < RESUME_BOUND_SECONDS
    running = task_of(outage_client, alice, task["id"])
    assert running["attempts"] == 1
    assert containers_of(docker_client, task["id"]) == [f"dockyard-task-{task['id']}-1"]
    log = worker.log()
    assert f"task {task['id']}: database back after" in log, log[-3000:]
