"""A task's owner hears how it ended, from a real Celery worker, even through a failing channel."""

from __future__ import annotations

import uuid

from celery import Celery

from services.tasks.config import TasksSettings
from services.tasks.dispatch import NOTIFY
from services.tasks.tests.engine.conftest import (
    Process,
    engine_env,
    wait_for,
    worker_argv,
)
from services.tasks.tests.engine.test_execution import submit, wait_status
from shared.celery import celery_config


def test_a_nameless_failed_task_is_announced_to_its_owner_by_its_id(client, alice, engine):
    task = submit(client, alice, ["false"])
    assert wait_status(client, alice, task["id"])["status"] == "FAILED"
    line = f"Notification sent to user {alice.id} about task {task['id']}: FAILED"
    wait_for(
        lambda: line in engine["worker"].log(),
        timeout=15,
        message=f"no {line!r} in the worker's log",
    )
    assert engine["worker"].log().count(line) == 1


def test_a_notification_whose_channel_fails_is_retried_with_backoff_until_delivered(
    test_env, auth_server, tmp_path
):
    # A namespace of its own: the suite's worker must not take this worker's jobs.
    namespace = f"{test_env.namespace}notify"
    env = engine_env(
        test_env,
        auth_server,
        DOCKYARD_NAMESPACE=namespace,
        NOTIFICATION_CHANNELS="flaky,log",
        TASKS_NOTIFY_RETRY_BACKOFF_SECONDS="1",
        TASKS_NOTIFY_RETRY_BACKOFF_MAX_SECONDS="2",
        FLAKY_COUNTER=str(tmp_path / "sends"),
        FLAKY_FAILURES="2",
    )
    argv = worker_argv(1)
    argv[argv.index("services.tasks.worker:celery_app")] = (
        "services.tasks.tests.engine.flaky_worker:celery_app"
    )
    worker = Process("flaky-worker", argv, env, tmp_path / "flaky-worker.log").start()
    try:
        wait_for(lambda: "ready." in worker.log(), timeout=30, message=worker.log()[-2000:])
        user_id = str(uuid.uuid4())
        sender = Celery("notify-sender")
        sender.config_from_object(celery_config(TasksSettings(NAMESPACE=namespace)))
        sender.send_task(
            NOTIFY, kwargs={"user_id": user_id, "task_label": "nightly", "status": "TIMED_OUT"}
        )
        line = f"Notification sent to user {user_id} about task nightly: TIMED_OUT"
        wait_for(lambda: line in worker.log(), timeout=20, message=worker.log()[-3000:])
        log = worker.log()
        assert log.count(line) == 1
        assert log.count("flaky channel: send") >= 2
        assert log.count("Retry in") == 2, log[-3000:]
        assert (tmp_path / "sends").read_text() == "3"
    finally:
        worker.stop()
