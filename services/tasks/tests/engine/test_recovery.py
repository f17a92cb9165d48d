"""Crash safety and failure modes: killed processes, orphans, a dead engine, long tasks."""

from __future__ import annotations

import subprocess
import time
import uuid

import docker
from celery import Celery

from services.tasks.config import TasksSettings
from services.tasks.dispatch import START_TASK
from services.tasks.models import TaskStatus
from services.tasks.tests.engine.conftest import (
    ENGINE_ENV,
    TEST_IMAGE,
    Process,
    engine_env,
    wait_for,
    worker_argv,
)
from services.tasks.tests.engine.test_execution import (
    containers_of,
    logs_of,
    submit,
    task_of,
    wait_status,
)
from services.tasks.tests.factories import task_row
from shared.celery import celery_config


def _labelled_sleeper(docker_client, namespace: str):
    """A container labelled as some task's, in `namespace`, that no task of this run owns."""
    container = docker_client.containers.create(
        TEST_IMAGE,
        ["sleep", "60"],
        network_mode="none",
        labels={
            "dockyard.task-id": str(uuid.uuid4()),
            "dockyard.attempt": "1",
            "dockyard.namespace": namespace,
        },
    )
    try:
        container.start()
    except docker.errors.APIError as exc:
        # This deployment's reconciler may take its orphan between create and start (409:
        # marked for removal; 404: gone), which is what the tests wait for anyway. Another
        # deployment's container failing to start fails the test's `running` check.
        if exc.status_code not in (404, 409):
            raise
    return container


def test_killing_the_launcher_worker_and_monitor_mid_run_loses_no_task_and_leaks_no_container(
    client, alice, engine, docker_client, test_env
):
    tasks = [submit(client, alice, ["sh", "-c", f"sleep 2; echo done-{n}"]) for n in range(6)]
    wait_for(
        lambda: any(task_of(client, alice, t["id"])["status"] == "RUNNING" for t in tasks),
        timeout=15,
        message="nothing started",
    )
    for name in ("launcher", "worker", "monitor"):
        engine[name].kill()
    # An orphan from some earlier life: labelled, but no task owns it.
    orphan = _labelled_sleeper(docker_client, test_env.namespace)
    time.sleep(3)  # some containers finish while nobody watches
    for name in ("launcher", "worker", "monitor"):
        engine[name].start()
    for n, task in enumerate(tasks):
        done = wait_status(client, alice, task["id"], timeout=90)
        assert done["status"] == "SUCCEEDED", (done["error_code"], done["error"], done)
        assert f"done-{n}" in logs_of(client, alice, task["id"], "stdout")["text"]
    for task in tasks:
        wait_for(
            lambda task=task: containers_of(docker_client, task["id"]) == [],
            timeout=10,
            message=f"container of {task['id']} leaked",
        )
    wait_for(
        lambda: (
            orphan.id
            not in {c.id for c in docker_client.containers.list(all=True, ignore_removed=True)}
        ),
        timeout=10,
        message="the orphaned container was not removed",
    )


def test_a_task_created_while_the_launcher_is_down_starts_once_it_is_back(client, alice, engine):
    engine["launcher"].kill()
    submitted = time.monotonic()
    try:
        task = submit(client, alice, ["echo", "waited"])
        # Its TaskCreated waits in the launcher's durable queue.
        time.sleep(1)
        assert task_of(client, alice, task["id"])["status"] == "PENDING"
    finally:
        engine["launcher"].start()
    engine["launcher"].wait_ready(log_line="launcher started")
    back_after = time.monotonic() - submitted
    done = wait_status(client, alice, task["id"], timeout=30)
    assert done["status"] == "SUCCEEDED", done
    assert done["attempts"] == 1
    assert "waited" in logs_of(client, alice, task["id"], "stdout")["text"]
    # Started from the queue, not by the reconciler's safety net, when the launcher was back
    # well before the net's deadline. On a loaded machine its start-up, or its first claim after
    # it, may outlast the deadline: the net then starts the task and the launcher finds it
    # started, once either way (attempts 1). A clean-clone CI run saw the net win with the
    # launcher back a second before the deadline, hence the margin.
    if back_after < float(ENGINE_ENV["TASKS_REDISPATCH_AFTER_SECONDS"]) - 3:
        assert f"task {task['id']}: no start job touched it" not in engine["monitor"].log()


def test_the_reconciler_leaves_other_deployments_containers_alone(engine, docker_client, test_env):
    # Another deployment on the same engine (say `make up` beside `make test`) owns this one.
    foreign = _labelled_sleeper(docker_client, f"{test_env.namespace}-other")
    ours = _labelled_sleeper(docker_client, test_env.namespace)
    try:
        wait_for(
            lambda: (
                ours.id
                not in {c.id for c in docker_client.containers.list(all=True, ignore_removed=True)}
            ),
            timeout=15,
            message="the reconciler did not remove this deployment's orphan",
        )
        foreign.reload()
        assert foreign.status == "running"
    finally:
        foreign.remove(force=True)
        try:
            ours.remove(force=True)
        except docker.errors.NotFound:
            pass


def test_a_long_task_holds_no_unacked_message(client, alice, test_env):
    # RabbitMQ's consumer_timeout only bites a consumer holding an unacked message; the launcher
    # and the start job ack within a second, whatever the task's length: nothing to time out.
    task = submit(client, alice, ["sleep", "30"])
    wait_status(client, alice, task["id"], {"RUNNING"})
    time.sleep(1)
    queues = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "name", "messages_unacknowledged"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    unacked = {
        name: int(count)
        for name, count in (line.split() for line in queues.splitlines() if line.strip())
        if name.startswith(f"{test_env.namespace}.celery")
        or name == f"{test_env.namespace}.consumer.tasks.dispatch"
    }
    assert f"{test_env.namespace}.consumer.tasks.dispatch" in unacked, unacked
    assert all(count == 0 for count in unacked.values()), unacked
    client.post(f"/v1/tasks/{task['id']}/cancel", headers=alice.headers)
    wait_status(client, alice, task["id"])


def test_a_dead_engine_fails_the_task_with_engine_unreachable_after_retries(
    client, alice, test_env, auth_server, tasks_app, tmp_path
):
    namespace = f"{test_env.namespace}dead"
    env = engine_env(
        test_env,
        auth_server,
        DOCKYARD_NAMESPACE=namespace,
        DOCKER_HOST="unix:///nonexistent/docker.sock",
    )
    worker = Process("dead-worker", worker_argv(1), env, tmp_path / "dead-worker.log").start()
    try:
        wait_for(lambda: "ready." in worker.log(), timeout=30, message=worker.log()[-2000:])
        assert "No Docker engine reachable" in worker.log()
        task_id = uuid.uuid4()
        with tasks_app.extensions["tasks"].uow() as uow:
            # Straight into the table: no TaskCreated, so the suite's own worker never sees it.
            row = task_row(
                uuid.UUID(alice.id), id=task_id, image=TEST_IMAGE, status=TaskStatus.QUEUED
            )
            uow.session.add(row)
            uow.commit()
        sender = Celery("dead-sender")
        sender.config_from_object(celery_config(TasksSettings(NAMESPACE=namespace)))
        sender.send_task(START_TASK, args=[str(task_id)])
        done = wait_status(client, alice, str(task_id), timeout=20)
        assert (done["status"], done["error_code"]) == ("FAILED", "ENGINE_UNREACHABLE"), done
        assert "nonexistent/docker.sock" in done["error"]
        assert worker.log().count("engine unavailable, retrying") == 2
    finally:
        worker.stop()
