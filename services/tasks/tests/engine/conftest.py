"""Fixtures of the engine tests: the real relay, consumer, launcher, Celery worker and monitor.

Tests need a Docker engine and the registry-free image `.ci/docker-engine.sh` builds; without
them they are skipped with the reason.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import docker
import pytest

from services.auth.tests.mailbox import Mailbox, SmtpServer
from services.registry import REGISTRY
from services.tasks.containers import namespace_filter
from shared import dbadmin, migrations
from shared.processes import ManagedProcess
from shared.testing import TestEnvironment, join_swarm_for_tests, run_directory

TEST_IMAGE = os.environ.get("DOCKYARD_TEST_IMAGE", "dockyard/busybox:test")
REPO = Path(__file__).resolve().parents[4]
BIN = Path(sys.executable).parent

#: Settings of the engine processes that keep the suite quick: fast backoff and reconciling.
ENGINE_ENV = {
    "TASKS_WORKER_CONCURRENCY": "8",
    "TASKS_RETRY_BACKOFF_SECONDS": "0.2",
    "TASKS_RETRY_BACKOFF_MAX_SECONDS": "1",
    "TASKS_RECONCILE_SECONDS": "1",
    "TASKS_REDISPATCH_AFTER_SECONDS": "5",
    "TASKS_ENGINE_RETRIES": "2",
    "TASKS_LOG_FLUSH_SECONDS": "0.3",
    "TASKS_USAGE_SAMPLE_SECONDS": "0.5",
    # Webhook receivers of the tests listen on loopback.
    "TASKS_WEBHOOK_ALLOW_PRIVATE": "true",
    "TASKS_NOTIFY_RETRY_BACKOFF_SECONDS": "1",
    "TASKS_NOTIFY_RETRY_BACKOFF_MAX_SECONDS": "2",
}


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    """A client of the local engine; without one CI fails, a developer's run says how to get it."""
    try:
        client = docker.from_env(version="auto")
        client.images.get(TEST_IMAGE)
    except docker.errors.DockerException as exc:
        reason = f"no Docker engine or no {TEST_IMAGE} (run .ci/docker-engine.sh): {exc}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    yield client
    client.close()


class Process(ManagedProcess):
    """One Dockyard process under test, its log file and how to start it again."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        super().__init__(name, argv, env=env, log=log_path, cwd=REPO)

    def log(self) -> str:
        """Everything the process wrote so far."""
        return self.logs()


@dataclass
class EngineProcesses:
    """The running engine processes (relay, consumer, launcher, Celery worker, monitor)."""

    processes: dict[str, Process] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Process:
        return self.processes[name]


def engine_env(test_env, auth_server, **extra: str) -> dict[str, str]:
    """The environment of an engine process of this run."""
    return {
        **os.environ,
        **test_env.env(),
        "AUTH_JWKS_URL": f"{auth_server.url}/v1/.well-known/jwks.json",
        "PYTHONUNBUFFERED": "1",
        **ENGINE_ENV,
        **extra,
    }


def worker_argv(concurrency: int = 4) -> list[str]:
    """The Celery worker command line."""
    return [
        str(BIN / "celery"),
        "-A",
        "services.tasks.worker:celery_app",
        "worker",
        "-c",
        str(concurrency),
        # A name of its own: two workers of one run (say, a package's engine and a module's)
        # would otherwise fight over the same exclusive control queue.
        "-n",
        f"tasks-{uuid.uuid4().hex[:8]}@%h",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "-l",
        "INFO",
    ]


@contextmanager
def own_environment(**options: str) -> Iterator[TestEnvironment]:
    """A database and namespace of a module's own (`options` go to TestEnvironment)."""
    environment = TestEnvironment(REGISTRY, **options)
    # Not set_up(): that would point the whole session's os.environ at this environment.
    tasks_url = environment.service_url("tasks")
    dbadmin.bootstrap(environment.admin_url, {"tasks": tasks_url})
    try:
        migrations.upgrade(REGISTRY.get("tasks").migrations, tasks_url)
        environment.mark_deny_list_whole()
        yield environment
    finally:
        dbadmin.drop_database(environment.admin_url, environment.database)


@contextmanager
def running_engine(test_env, auth_server, docker_client, **extra: str) -> Iterator[EngineProcesses]:
    """Start the relay, event consumer, launcher, Celery worker and monitor; stop them after.

    `extra` overrides environment variables of the processes (e.g. settings under test).
    """
    logs = Path(tempfile.mkdtemp(prefix=f"dockyard-engine-{test_env.run_id}-"))
    print(f"engine process logs: {logs}")
    env = engine_env(test_env, auth_server, **extra)
    dockyard = str(BIN / "dockyard")
    commands = {
        "relay": [dockyard, "relay", "tasks"],
        "consume": [dockyard, "consume", "tasks"],
        "launcher": [sys.executable, "-m", "services.tasks.launcher"],
        "worker": worker_argv(),
        "monitor": [sys.executable, "-m", "services.tasks.monitor"],
    }
    running = EngineProcesses()
    try:
        for name, argv in commands.items():
            running.processes[name] = Process(name, argv, env, logs / f"{name}.log").start()
        ready = {
            "consume": "consumer started",
            "launcher": "launcher started",
            "worker": "ready.",
            "monitor": "monitor leads",
        }
        for name, marker in ready.items():
            wait_for(
                lambda name=name, marker=marker: marker in running[name].log(),
                timeout=30,
                message=f"{name} did not start: {running[name].log()[-2000:]}",
            )
        yield running
    finally:
        for process in running.processes.values():
            process.stop()
        for container in docker_client.containers.list(
            all=True, filters=namespace_filter(test_env.namespace), ignore_removed=True
        ):
            try:
                container.remove(force=True)
            except docker.errors.NotFound:
                pass


@pytest.fixture(scope="package")
def engine_smtp() -> Iterator[SmtpServer]:
    """A real SMTP server on loopback that the engine's worker mails notifications to."""
    server = SmtpServer(Mailbox())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="package")
def engine(test_env, auth_server, docker_client, engine_smtp) -> Iterator[EngineProcesses]:
    """The engine processes of this run, for this package.

    Package-scoped: other tests create tasks they expect to stay PENDING.
    """
    with running_engine(
        test_env,
        auth_server,
        docker_client,
        TASKS_SMTP_HOST="127.0.0.1",
        TASKS_SMTP_PORT=str(engine_smtp.port),
    ) as running:
        yield running


def wait_for(predicate: Callable[[], object], *, timeout: float, message: str) -> object:
    """Poll `predicate` until it returns something truthy, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout}s: {message}")
        time.sleep(0.1)


@pytest.fixture(scope="session")
def swarm(docker_client, tmp_path_factory) -> Iterator[None]:
    """The engine as a one-node swarm manager: made here if it was none, left after the run.

    The root conftest leaves it once every parallel worker is done (`run_directory`).
    """
    try:
        join_swarm_for_tests(docker_client, run_directory(tmp_path_factory))
    except RuntimeError as error:
        # No silent skip: the swarm suite must run wherever the test suite runs.
        pytest.fail(str(error))
    yield


def swarm_services_of(docker_client, task_id: str) -> list:
    """Every swarm service labelled with the task."""
    return docker_client.services.list(filters={"label": f"dockyard.task-id={task_id}"})


def remove_swarm_leftovers(docker_client, namespace: str) -> None:
    """Remove the services and networks of this run's namespace (and nothing else)."""
    label = {"label": f"dockyard.namespace={namespace}"}
    for service in docker_client.services.list(filters=label):
        service.remove()
    for network in docker_client.networks.list(filters=label):
        try:
            network.remove()
        except docker.errors.APIError:
            pass
