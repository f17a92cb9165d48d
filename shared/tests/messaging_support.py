"""Helpers of the messaging tests: probe events, a logging handler, polling, real processes."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from services.auth.models import messaging_tables
from shared.db import UnitOfWork, session_factory
from shared.events import Envelope, Event
from shared.messaging.consumer import Consumer, Subscription
from shared.outbox.relay import OutboxRelay
from shared.processes import ManagedProcess

DOCKYARD = str(Path(sys.executable).with_name("dockyard"))


@dataclass(frozen=True)
class RelayProbed(Event):
    """Probe event of the relay crash test."""

    aggregate_type = "relay-probe"
    aggregate_field = "probe_id"

    probe_id: str
    n: int


@dataclass(frozen=True)
class OrderProbed(Event):
    """Probe event of the ordering test."""

    aggregate_type = "order-probe"
    aggregate_field = "probe_id"

    probe_id: str
    n: int


@dataclass(frozen=True)
class PoisonProbed(Event):
    """Probe event whose handler fails."""

    aggregate_type = "poison-probe"
    aggregate_field = "probe_id"

    probe_id: str
    n: int


@dataclass(frozen=True)
class NobodyListensProbed(Event):
    """Probe event no queue is bound for."""

    aggregate_type = "lonely-probe"
    aggregate_field = "probe_id"

    probe_id: str
    n: int


@dataclass(frozen=True)
class CrashProbed(Event):
    """Probe event of the consumer crash test."""

    aggregate_type = "crash-probe"
    aggregate_field = "probe_id"

    probe_id: str
    n: int


@dataclass(frozen=True)
class ReconnectProbed(Event):
    """Probe event of the reconnection test."""

    aggregate_type = "reconnect-probe"
    aggregate_field = "probe_id"

    probe_id: str
    n: int


def log_probe(consumer: str, envelope: Envelope, session: Session) -> None:
    """Write what a handler saw to probe_log, in the handler's transaction."""
    session.execute(
        text(
            "INSERT INTO probe_log (consumer, event_id, aggregate_id, sequence, n)"
            " VALUES (:consumer, :id, :aggregate_id, :sequence, :n)"
        ),
        {
            "consumer": consumer,
            "id": envelope.id,
            "aggregate_id": envelope.aggregate_id,
            "sequence": envelope.sequence,
            "n": envelope.payload["n"],
        },
    )


def commit_events(engine: Engine, events: list[Event], *, per_transaction: int = 100) -> None:
    """Commit events through the auth service's unit of work, `per_transaction` at a time."""
    uow = UnitOfWork(session_factory(engine), schema="auth", source="auth")
    for start in range(0, len(events), per_transaction):
        with uow:
            for event in events[start : start + per_transaction]:
                uow.add_event(event)
            uow.commit()


def scalar(engine: Engine, sql: str, **params) -> int:
    """One value from the auth schema."""
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar_one()


def wait_until(condition: Callable[[], object], *, timeout: float, what: str) -> None:
    """Poll `condition` until it is truthy; fail naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def metric(name: str, **labels: str) -> float:
    """A sample of this process's default registry (0 when not yet created)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def scrape(port: int, name: str) -> float:
    """Sum of a metric's samples served by a process on `port`."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        families = text_string_to_metric_families(response.read().decode())
        return sum(
            sample.value for family in families for sample in family.samples if sample.name == name
        )


def make_consumer(test_env, engine: Engine, *subscriptions: Subscription, **kwargs) -> Consumer:
    """A Consumer on the auth schema of this test run."""
    return Consumer(
        list(subscriptions),
        engine=engine,
        tables=messaging_tables,
        amqp_url=test_env.amqp_url,
        namespace=test_env.namespace,
        **kwargs,
    )


def make_relay(test_env, engine: Engine, **kwargs) -> OutboxRelay:
    """An in-process relay of the auth outbox."""
    return OutboxRelay(
        engine=engine,
        outbox=messaging_tables.outbox,
        amqp_url=test_env.amqp_url,
        namespace=test_env.namespace,
        **kwargs,
    )


@contextmanager
def running(worker: Consumer | OutboxRelay) -> Iterator[Consumer | OutboxRelay]:
    """Run a consumer or relay in a thread; stop it and check it stopped on the way out."""
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    if isinstance(worker, Consumer):
        assert worker.ready.wait(15), "the consumer did not start"
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(15)
        assert not thread.is_alive(), f"{type(worker).__name__} did not stop"


def relay_process(log_path: Path, *args: str) -> ManagedProcess:
    """`dockyard relay auth` as a real subprocess (started by `with` or start()), logs in a file."""
    return ManagedProcess(
        "relay", [DOCKYARD, "relay", "auth", *args], env=os.environ.copy(), log=log_path
    )


def dockyard(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run the `dockyard` command with this test run's environment."""
    return subprocess.run(
        [DOCKYARD, *args],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
