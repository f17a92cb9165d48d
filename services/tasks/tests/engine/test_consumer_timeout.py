"""A task far longer than RabbitMQ's consumer_timeout is neither killed nor run twice.

The module starts its own throwaway RabbitMQ node whose consumer_timeout is a few seconds (3.10
has only the global setting, and the suite's shared broker must keep its default), with the
channel tick lowered so the broker checks that timeout twice a second instead of once a minute.
A full engine (relay, consumer, launcher, Celery worker, monitor) runs against it with its own
database and namespace, so the suite's other engine processes can neither lead nor dispatch for it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import amqp
import pytest

from services.tasks.app import create_app
from services.tasks.config import TasksSettings
from services.tasks.containers import LABEL_ATTEMPT, LABEL_TASK
from services.tasks.lifecycle import container_name
from services.tasks.tests.engine.conftest import (
    EngineProcesses,
    engine_env,
    own_environment,
    running_engine,
    wait_for,
)
from services.tasks.tests.engine.test_execution import logs_of, submit, task_of, wait_status
from shared import testing
from shared.throwaway import RabbitNode

CONSUMER_TIMEOUT_SECONDS = 3
#: How often a channel checks its oldest unacked message (RabbitMQ's default is 60 s).
CHANNEL_TICK_MS = 500
#: Several times the consumer timeout, so a held start message would be caught many times over.
LONG_TASK_SECONDS = 20
#: What the broker logs when it closes a channel for holding a message too long.
TIMED_OUT = "timed out waiting for delivery acknowledgement"


@pytest.fixture(scope="module")
def short_timeout_broker() -> Iterator[RabbitNode]:
    """A RabbitMQ node of this module only, with a consumer_timeout of a few seconds."""
    root = Path(tempfile.mkdtemp(prefix="dockyard-rabbit-"))
    node = None
    try:
        try:
            node = RabbitNode.configure(
                root,
                consumer_timeout_ms=CONSUMER_TIMEOUT_SECONDS * 1000,
                channel_tick_ms=CHANNEL_TICK_MS,
            )
            node.start()
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            reason = f"cannot run a throwaway RabbitMQ node with a short consumer_timeout: {exc}"
            if os.environ.get("CI"):
                pytest.fail(reason)
            pytest.skip(reason)
        # A node that runs but ignored its config is a broken setup, never a reason to skip.
        expected = f"{{{{ok,{CONSUMER_TIMEOUT_SECONDS * 1000}}},{{ok,{CHANNEL_TICK_MS}}}}}"
        if (applied := node.timeouts()) != expected:
            pytest.fail(f"node {node.name} ignored its config: {applied!r} != {expected!r}")
        yield node
    finally:
        if node is not None:
            node.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def timeout_env(short_timeout_broker) -> Iterator[testing.TestEnvironment]:
    """A database and namespace of this module's own, its messaging on the short-timeout node."""
    with own_environment(amqp_url=short_timeout_broker.url) as environment:
        yield environment


@pytest.fixture(scope="module")
def timeout_engine(timeout_env, auth_server, docker_client) -> Iterator[EngineProcesses]:
    """The relay, consumer, launcher, Celery worker and monitor, on the short-timeout broker."""
    with running_engine(timeout_env, auth_server, docker_client) as running:
        yield running


@pytest.fixture(scope="module")
def timeout_client(timeout_env, auth_server, short_timeout_broker):
    """A test client of a tasks app on this module's database and broker."""
    app = create_app(TasksSettings(engine_env(timeout_env, auth_server)))
    yield app.test_client()
    app.extensions["tasks"].database.dispose()


def test_the_broker_closes_a_channel_that_holds_a_message_past_its_consumer_timeout(
    short_timeout_broker,
):
    """The lowered consumer_timeout bites: a consumer holding a message loses its channel."""
    # The control: without it a broker that never times out would pass the test below too.
    queue = f"control-{uuid.uuid4().hex[:8]}"
    with amqp.Connection(
        f"127.0.0.1:{short_timeout_broker.port}", userid="guest", password="guest"
    ) as connection:
        channel = connection.channel()
        channel.queue_declare(queue, auto_delete=False)
        channel.basic_publish(amqp.Message("held"), routing_key=queue)
        held = []
        channel.basic_qos(0, 1, False)
        channel.basic_consume(queue, callback=held.append)
        started = time.monotonic()
        with pytest.raises(amqp.exceptions.PreconditionFailed, match="delivery acknowledgement"):
            while time.monotonic() - started < 30:
                try:
                    connection.drain_events(timeout=0.5)
                except TimeoutError:
                    pass
        held_for = time.monotonic() - started
        assert [m.body for m in held] == ["held"]
        assert held[0].delivery_info["redelivered"] is False
        # Closed soon after the timeout, so the lowered channel tick took effect too.
        assert CONSUMER_TIMEOUT_SECONDS - 0.5 <= held_for < CONSUMER_TIMEOUT_SECONDS + 3, held_for
        again = connection.channel().basic_get(queue, no_ack=True)
        assert again is not None and again.body == "held"
        assert again.delivery_info["redelivered"] is True
    # The node writes its log file a moment later.
    wait_for(
        lambda: TIMED_OUT in short_timeout_broker.log(),
        timeout=10,
        message="the node did not log the consumer timeout",
    )


def test_a_task_running_far_past_the_consumer_timeout_succeeds_exactly_once(
    timeout_client, timeout_engine, timeout_env, short_timeout_broker, register, docker_client
):
    """A task of several consumer timeouts ends SUCCEEDED from one start and one container."""
    client, alice = timeout_client, register()
    celery_queue = f"{timeout_env.namespace}.celery"
    launch_queue = f"{timeout_env.namespace}.consumer.tasks.dispatch"
    broker_log_mark = len(short_timeout_broker.log())
    since = int(time.time()) - 1
    marker = uuid.uuid4().hex[:8]
    script = f"echo begin-{marker}; sleep {LONG_TASK_SECONDS}; echo end-{marker}"
    task = submit(client, alice, ["sh", "-c", script], timeout_seconds=LONG_TASK_SECONDS * 3)

    running = wait_status(client, alice, task["id"], {"RUNNING"}, timeout=30)
    assert running["attempts"] == 1
    # Past the timeout plus a few ticks: a held start message would have been caught by now.
    time.sleep(CONSUMER_TIMEOUT_SECONDS + 4 * CHANNEL_TICK_MS / 1000)
    assert task_of(client, alice, task["id"])["status"] == "RUNNING"
    queues = [
        q
        for q in short_timeout_broker.rows("queues", "name", "consumers", "messages_unacknowledged")
        if q["name"] in (celery_queue, launch_queue)
    ]
    assert len(queues) == 2, queues
    for queue in queues:
        assert (queue["consumers"], queue["messages_unacknowledged"]) == (1, 0), queue
    consumer_channels = {
        c["channel_pid"]
        for c in short_timeout_broker.rows("consumers", "queue_name", "channel_pid")
        if c["queue_name"] in (celery_queue, launch_queue)
    }

    done = wait_status(client, alice, task["id"], timeout=LONG_TASK_SECONDS + 30)
    assert (done["status"], done["exit_code"], done["attempts"]) == ("SUCCEEDED", 0, 1), done
    assert logs_of(client, alice, task["id"], "stdout")["text"] == (
        f"begin-{marker}\nend-{marker}\n"
    )

    def container_starts() -> list[tuple[str, str]]:
        events = docker_client.events(
            since=since,
            until=int(time.time()) + 1,
            filters={"type": "container", "label": f"{LABEL_TASK}={task['id']}"},
            decode=True,
        )
        return [
            (e["Actor"]["Attributes"]["name"], e["Actor"]["Attributes"][LABEL_ATTEMPT])
            for e in events
            if e["Action"] in ("create", "start")
        ]

    # A loaded engine has answered an events query with nothing yet: ask again before judging.
    deadline = time.monotonic() + 10
    while not (starts := container_starts()) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert starts == [(container_name(task["id"], 1), "1")] * 2, starts

    # Started by the launcher alone: no start job was handed over, and neither consumer lost
    # its channel (a redelivered start would find the task running and do nothing, so the
    # containers alone cannot tell; the logs can).
    worker_log = timeout_engine["worker"].log()
    assert not re.findall(r"Task tasks\.start_task\[[^\]]+\] received", worker_log)
    assert "Connection to broker lost" not in worker_log, worker_log[-3000:]
    launcher_log = timeout_engine["launcher"].log()
    assert "lost the broker" not in launcher_log, launcher_log[-3000:]
    assert launcher_log.count("launcher started") == 1, launcher_log[-3000:]
    # Celery takes the broker closing its channel as unrecoverable: the whole worker exits.
    assert timeout_engine["worker"].running, worker_log[-3000:]
    assert TIMED_OUT not in short_timeout_broker.log()[broker_log_mark:]
    still_consuming = {
        c["channel_pid"]
        for c in short_timeout_broker.rows("consumers", "queue_name", "channel_pid")
        if c["queue_name"] in (celery_queue, launch_queue)
    }
    assert still_consuming == consumer_channels, (consumer_channels, still_consuming)
