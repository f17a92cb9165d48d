"""Relays, consumers and the gateway's event feed resume within seconds of an outage's end.

The broker's outage is a throwaway RabbitMQ node of this module's own, stopped and started
again; the database's is a TcpProxy in front of the shared PostgreSQL, cut and restored (the
shared server itself is never restarted). Each test measures how long after the return the
work resumed, prints it, and holds it to a bound generous enough for a loaded machine: the
reconnect delays are capped at about a second (shared.reconnect), where they used to grow to
15 s.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.auth.models import messaging_tables
from services.gateway.feed import EventFeed, EventListener
from shared.celery import send_job
from shared.config import CommonSettings
from shared.db import make_engine
from shared.messaging.consumer import Consumer, Subscription
from shared.outbox.relay import OutboxRelay
from shared.processes import ManagedProcess
from shared.reconnect import RECONNECT_MAX_DELAY, Backoff, Reconnects
from shared.tests.messaging_support import (
    ReconnectProbed,
    commit_events,
    log_probe,
    running,
    scalar,
    wait_until,
)
from shared.tests.probe_celery import RECORD, runs
from shared.throwaway import RabbitNode, TcpProxy

#: Longest the work may take to resume after the broker or database is back (the target is
#: 2 s; the rest is room for a loaded machine).
RESUME_BOUND_SECONDS = 5.0
#: Failed attempts each process must have made before the outage ends: with the old backoff
#: (0.5 s doubling to 15 s) the next delay after these would have been 8 s.
ATTEMPTS_BEFORE_RETURN = 5
CELERY = str(Path(sys.executable).with_name("celery"))
#: How often the probe's beat entry falls due: short, so a tick falls due during the outage.
BEAT_SECONDS = 5.0


@pytest.fixture(scope="module")
def broker() -> Iterator[RabbitNode]:
    """A RabbitMQ node of this module only, which the tests stop and start."""
    root = Path(tempfile.mkdtemp(prefix="dockyard-rabbit-"))
    node = None
    try:
        try:
            node = RabbitNode.configure(root)
            node.start()
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            reason = f"cannot run a throwaway RabbitMQ node: {exc}"
            if os.environ.get("CI"):
                pytest.fail(reason)
            pytest.skip(reason)
        yield node
    finally:
        if node is not None:
            node.stop()
        shutil.rmtree(root, ignore_errors=True)


def probe_subscription(name: str) -> Subscription:
    """A subscription that writes each ReconnectProbed it handles to probe_log."""
    return Subscription(name, ["auth.ReconnectProbed"], lambda e, s: log_probe(name, e, s))


def handled(auth_engine, name: str) -> int:
    """How many events the probe subscription `name` handled."""
    return scalar(auth_engine, "SELECT count(*) FROM probe_log WHERE consumer = :c", c=name)


def outage_records(caplog, logger: str) -> list[logging.LogRecord]:
    """What `logger` logged about the outage: each failed attempt, then the reconnection."""
    return [r for r in caplog.records if r.name == logger and r.levelno >= logging.INFO]


def assert_logged_quietly(caplog, logger: str) -> None:
    """One WARNING line per failed attempt, no traceback, and an INFO line once back."""
    records = outage_records(caplog, logger)
    warnings = [r for r in records if r.levelno == logging.WARNING and "attempt" in r.message]
    assert len(warnings) >= ATTEMPTS_BEFORE_RETURN, [r.message for r in records]
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in warnings)
    assert not [r for r in records if r.levelno >= logging.ERROR], [r.message for r in records]
    assert any("reconnected after" in r.message for r in records), [r.message for r in records]


def test_relay_consumer_and_event_feed_resume_within_seconds_of_the_broker_coming_back(
    broker, test_env, auth_engine, caplog
):
    caplog.set_level(logging.INFO)
    name = "test.broker-outage"
    common = {"amqp_url": broker.url, "namespace": test_env.namespace}
    consumer = Consumer(
        [probe_subscription(name)], engine=auth_engine, tables=messaging_tables, **common
    )
    relay = OutboxRelay(
        engine=auth_engine, outbox=messaging_tables.outbox, poll_interval=0.1, **common
    )
    loop = asyncio.new_event_loop()
    loop_thread = threading.Thread(target=loop.run_forever, daemon=True)
    loop_thread.start()
    listener = EventListener(EventFeed(), **common)
    listener.start(loop)
    try:
        with running(consumer), running(relay):
            assert listener.connected.wait(30), "the event feed did not connect"
            commit_events(auth_engine, [ReconnectProbed(probe_id="broker", n=1)])
            wait_until(lambda: handled(auth_engine, name) == 1, timeout=30, what="the first event")

            broker.stop()
            # Committed while the broker is away: the relay must publish it once it is back.
            commit_events(auth_engine, [ReconnectProbed(probe_id="broker", n=2)])
            wait_until(
                lambda: (
                    min(relay._reconnects.attempts, consumer._reconnects.attempts)
                    >= ATTEMPTS_BEFORE_RETURN
                ),
                timeout=60,
                what="the relay and the consumer to retry the broker",
            )
            assert not listener.connected.is_set()
            broker.start()
            back = time.monotonic()

            assert listener.connected.wait(30), "the event feed did not reconnect"
            feed_resumed = time.monotonic() - back
            wait_until(lambda: handled(auth_engine, name) == 2, timeout=30, what="the 2nd event")
            resumed = time.monotonic() - back
    finally:
        listener.stop()
        loop.call_soon_threadsafe(loop.stop)
        loop_thread.join(5)
        loop.close()
    print(
        f"after the broker came back: feed consuming in {feed_resumed:.2f} s, event relayed and"
        f" handled in {resumed:.2f} s"
    )
    assert feed_resumed < RESUME_BOUND_SECONDS
    assert resumed < RESUME_BOUND_SECONDS
    assert_logged_quietly(caplog, "shared.outbox.relay")
    assert_logged_quietly(caplog, "shared.messaging.consumer")
    assert_logged_quietly(caplog, "dockyard.gateway.feed")


def test_relay_and_consumer_resume_within_seconds_of_the_database_coming_back(
    test_env, auth_engine, caplog
):
    caplog.set_level(logging.INFO)
    name = "test.database-outage"
    proxy = TcpProxy(*_host_and_port(auth_engine)).start()
    # The relay and consumer under test reach PostgreSQL through the proxy; the test does not.
    proxied = make_engine(proxy.url_for(test_env.service_url("auth")), schema="auth", pool_size=4)
    common = {"amqp_url": test_env.amqp_url, "namespace": test_env.namespace}
    consumer = Consumer(
        [probe_subscription(name)], engine=proxied, tables=messaging_tables, **common
    )
    relay = OutboxRelay(engine=proxied, outbox=messaging_tables.outbox, poll_interval=0.1, **common)
    # A relay that keeps its database, so the consumer gets an event during the outage.
    bystander = OutboxRelay(
        engine=auth_engine, outbox=messaging_tables.outbox, poll_interval=0.1, **common
    )
    try:
        with running(consumer), running(relay):
            commit_events(auth_engine, [ReconnectProbed(probe_id="database", n=1)])
            wait_until(lambda: handled(auth_engine, name) == 1, timeout=30, what="the first event")

            proxy.cut()
            with running(bystander):
                commit_events(auth_engine, [ReconnectProbed(probe_id="database", n=2)])
                wait_until(
                    lambda: (
                        min(relay._reconnects.attempts, consumer._reconnects.attempts)
                        >= ATTEMPTS_BEFORE_RETURN
                    ),
                    timeout=60,
                    what="the relay and the consumer to retry the database",
                )
                proxy.restore()
                back = time.monotonic()
                wait_until(
                    lambda: handled(auth_engine, name) == 2, timeout=30, what="the 2nd event"
                )
                consumer_resumed = time.monotonic() - back
                wait_until(
                    lambda: relay._reconnects.attempts == 0, timeout=30, what="the relay's return"
                )
                relay_resumed = time.monotonic() - back
    finally:
        proxy.cut()
        proxied.dispose()
    print(
        f"after the database came back: consumer handled the waiting event in"
        f" {consumer_resumed:.2f} s, relay back in {relay_resumed:.2f} s"
    )
    assert consumer_resumed < RESUME_BOUND_SECONDS
    assert relay_resumed < RESUME_BOUND_SECONDS
    assert_logged_quietly(caplog, "shared.outbox.relay")
    assert_logged_quietly(caplog, "shared.messaging.consumer")


def _host_and_port(engine) -> tuple[str, int]:
    url = engine.url
    return url.host or "127.0.0.1", url.port or 5432


def test_reconnect_delays_grow_to_about_a_second_and_no_further():
    backoff = Backoff()
    delays = [backoff.next() for _ in range(20)]
    assert delays[0] <= 0.1
    assert max(delays) <= RECONNECT_MAX_DELAY
    assert min(delays[-5:]) >= RECONNECT_MAX_DELAY * 0.7  # jittered below the cap, not far
    backoff.reset()
    assert backoff.next() <= 0.1


def test_an_unexpected_error_keeps_its_traceback_and_an_outage_is_one_line(caplog):
    caplog.set_level(logging.INFO)
    logger = logging.getLogger("test.reconnects")
    reconnects = Reconnects("probe", logger)
    reconnects.failed(ConnectionRefusedError(111, "Connection refused"))
    reconnects.failed(ValueError("a bug"))
    reconnects.succeeded()
    outage, bug, back = caplog.records
    assert outage.levelno == logging.WARNING and outage.exc_info is None
    assert outage.getMessage().startswith("probe: ConnectionRefusedError: ")
    assert "(attempt 1); retrying in" in outage.getMessage()
    assert bug.levelno == logging.ERROR and bug.exc_info is not None
    assert back.levelno == logging.INFO
    assert back.getMessage().startswith("probe: reconnected after ")


def test_a_celery_worker_and_beat_resume_within_seconds_and_beat_loses_no_tick(
    broker, test_env, tmp_path
):
    probe = tmp_path / "runs"
    env = {
        **os.environ,
        "AMQP_URL": broker.url,
        "DOCKYARD_NAMESPACE": test_env.namespace,
        "PROBE_FILE": str(probe),
        "PROBE_BEAT_SECONDS": str(BEAT_SECONDS),
    }
    app = ["-A", "shared.tests.probe_celery:app"]
    worker = ManagedProcess(
        "probe-worker",
        [
            CELERY,
            *app,
            "worker",
            "-c",
            "1",
            "-n",
            f"probe-{test_env.run_id}@%h",
            "-l",
            "INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        env=env,
        log=tmp_path / "worker.log",
    )
    beat = ManagedProcess(
        "probe-beat",
        [CELERY, *app, "beat", "--scheduler", "celery.beat:Scheduler", "-l", "INFO"],
        env=env,
        log=tmp_path / "beat.log",
    )
    sender = CommonSettings({"AMQP_URL": broker.url, "DOCKYARD_NAMESPACE": test_env.namespace})

    def tagged(tag: str, *, after: float = 0.0) -> list[float]:
        return [at for t, at in runs(str(probe)) if t == tag and at > after]

    def broker_attempts() -> int:
        return worker.logs().count("celery worker: broker: ")

    with worker, beat:
        worker.wait_ready(log_line="ready.", timeout=60)
        send_job(sender, RECORD, args=["before"])
        wait_until(lambda: tagged("before"), timeout=30, what="a job before the outage")
        wait_until(lambda: tagged("beat"), timeout=BEAT_SECONDS + 30, what="a first beat tick")

        def sent() -> int:
            return beat.logs().count("Sending due task")

        sent_before = sent()
        broker.stop()
        stopped = time.time()
        # Long enough that a beat tick falls due while the broker is away.
        wait_until(
            lambda: (
                broker_attempts() >= ATTEMPTS_BEFORE_RETURN
                and time.time() > stopped + BEAT_SECONDS + 1
            ),
            timeout=60,
            what="the worker to retry the broker and a beat tick to fall due",
        )
        assert sent() > sent_before, "no beat tick fell due during the outage"
        assert not tagged("beat", after=stopped)
        broker.start()
        back, back_at = time.monotonic(), time.time()
        send_job(sender, RECORD, args=["after"])
        wait_until(lambda: tagged("after"), timeout=30, what="a job after the outage")
        worker_resumed = time.monotonic() - back
        wait_until(
            lambda: tagged("beat", after=stopped), timeout=30, what="the tick due in the outage"
        )
        beat_resumed = tagged("beat", after=stopped)[0] - back_at
        # No tick lost: every one beat sent ran (it sends none while it waits for the broker).
        wait_until(
            lambda: len(tagged("beat")) >= sent(), timeout=30, what="every tick beat sent to run"
        )
        worker_log, beat_log = worker.logs(), beat.logs()
    print(
        f"after the broker came back: a Celery job ran in {worker_resumed:.2f} s, the beat tick"
        f" due during the outage ran {beat_resumed:.2f} s after it"
    )
    assert worker_resumed < RESUME_BOUND_SECONDS
    assert beat_resumed < RESUME_BOUND_SECONDS
    # The tick was sent late, not dropped with a "Message Error".
    assert "Couldn't apply scheduled task" not in beat_log, beat_log[-3000:]
    # One WARNING line per failed attempt, no traceback, and one line once back.
    assert "celery worker: broker: reconnected after" in worker_log, worker_log[-3000:]
    assert "Cannot connect to" not in worker_log and "Traceback" not in worker_log
