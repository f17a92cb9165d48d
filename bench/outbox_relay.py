"""Benchmark of the event pipeline: commit -> outbox relay -> RabbitMQ -> consumer ack.

Run `.venv/bin/python bench/outbox_relay.py` with PostgreSQL and RabbitMQ up. It provisions a
throwaway environment (shared.testing.TestEnvironment), runs `dockyard relay auth` as a
subprocess and a consumer (the real Consumer, its handler writing one row per event) in a
child process, and measures:

* baseline: the broker alone, persistent messages to a durable queue: throughput with confirms
  pipelined per batch (what the relay does) and waited for one by one (kombu's
  confirm_publish), and publish -> delivery latency at the paced rate;
* idle latency: single-event transactions spaced out, commit -> consumer ack;
* paced: events committed at 1,000 a second, commit -> ack latency under load (recorded: p50,
  target <= 20 ms);
* flat out: events committed as fast as one producer can (transactions of --per-tx events),
  end-to-end throughput and commit -> ack latency;
* backlog: events committed with the relay stopped, then drained by relay and consumer
  (recorded: first ack -> last ack, target >= 5,000 events/s).

`--phases backlog,paced` runs only some phases (the baseline always runs).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import queue
import statistics
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import amqp
from kombu import Connection, Exchange, Producer
from kombu import Queue as KombuQueue
from results import record
from sqlalchemy import text
from support import BIN, percentile, spawn, stop

from services.registry import REGISTRY
from shared.db import UnitOfWork, make_engine, session_factory
from shared.events import Envelope, Event
from shared.messaging.broker import ConfirmingPublisher, close_quietly, connect
from shared.messaging.consumer import Consumer, Subscription
from shared.messaging.runtime import Stopper
from shared.processes import ManagedProcess
from shared.testing import TestEnvironment

SCHEMA = "auth"
CONSUMER_NAME = "bench.pipeline"
PHASES = {"idle", "paced", "flat", "backlog", "backlog-batched"}
#: Events a second committed in the paced phase, and messages a second in the broker baseline.
PACED_RATE = 1000
#: Messages per confirmed batch in the broker's throughput baseline (the relay's default batch).
BASELINE_BATCH = 1000
BASELINE_BODY = json.dumps(
    {"id": str(uuid.uuid4()), "payload": {"x": "y" * 300}, "type": "BenchPinged"}
).encode()


@dataclass(frozen=True)
class BenchPinged(Event):
    """The benchmark's event: which phase, which number."""

    aggregate_type = "bench"
    aggregate_field = "stream"

    stream: str
    phase: str
    n: int


@dataclass(frozen=True)
class BenchBatchPinged(BenchPinged):
    """The same event, for the subscription whose handler takes a batch."""


RECORD_EFFECT = text("INSERT INTO bench_effects (event_id, n) VALUES (:id, :n)")
RECORD_EFFECTS = text(
    "INSERT INTO bench_effects (event_id, n)"
    " SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:ns AS int[]))"
)


def record_effect(envelope: Envelope, session) -> None:
    """The benchmark handler: one row per event, as a typical reaction would write."""
    session.execute(RECORD_EFFECT, {"id": envelope.id, "n": envelope.payload["n"]})


def record_effects(envelopes: list[Envelope], session) -> None:
    """The batched benchmark handler: the same rows, one statement per batch."""
    session.execute(
        RECORD_EFFECTS,
        {"ids": [e.id for e in envelopes], "ns": [e.payload["n"] for e in envelopes]},
    )


def consumer_process(env: dict[str, str], acks, ready) -> None:
    """Child process: the real Consumer; reports (ack time, [(phase, n), ...]) per acked batch."""
    os.environ.update(env)
    from services.auth.models import messaging_tables

    engine = make_engine(env["AUTH_DATABASE_URL"], schema=SCHEMA, pool_size=2)
    stopper = Stopper()
    stopper.install_signal_handlers()

    def after_ack(_name: str, envelopes: list[Envelope]) -> None:
        acks.put((time.time(), [(e.payload["phase"], e.payload["n"]) for e in envelopes]))

    consumer = Consumer(
        [
            Subscription(CONSUMER_NAME, ["auth.BenchPinged"], record_effect),
            Subscription(
                f"{CONSUMER_NAME}-batched", ["auth.BenchBatchPinged"], record_effects, batched=True
            ),
        ],
        engine=engine,
        tables=messaging_tables,
        amqp_url=env["AMQP_URL"],
        namespace=env["DOCKYARD_NAMESPACE"],
        stopper=stopper,
        after_ack=after_ack,
    )
    threading.Thread(target=lambda: (consumer.ready.wait(), ready.set()), daemon=True).start()
    consumer.run()


class Acks:
    """Collects ack times reported by the consumer process."""

    def __init__(self, source) -> None:
        self.source = source
        self.times: dict[tuple[str, int], float] = {}
        # Counted as they come: recounting every ack per report took CPU from the measured run.
        self.counts: Counter[str] = Counter()

    def wait_for(self, phase: str, count: int, timeout: float) -> None:
        """Block until `count` events of `phase` were acked, or fail."""
        deadline = time.monotonic() + timeout
        while self.counts[phase] < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SystemExit(
                    f"{phase}: only {self.counts[phase]} of {count} events acked in {timeout}s"
                )
            try:
                batch = self.source.get(timeout=min(remaining, 1.0))
            except queue.Empty:
                continue
            at, events = batch
            for phase_name, n in events:
                if (phase_name, n) not in self.times:
                    self.times[phase_name, n] = at
                    self.counts[phase_name] += 1

    def of(self, phase: str) -> dict[int, float]:
        """n -> ack time, for one phase."""
        return {n: at for (p, n), at in self.times.items() if p == phase}


def latency_line(commits: dict[int, float], acks: dict[int, float]) -> str:
    """p50/p99/max of commit -> ack, in milliseconds."""
    ms = [(acks[n] - commits[n]) * 1000 for n in commits]
    return (
        f"p50 {percentile(ms, 0.50):7.1f} ms   p99 {percentile(ms, 0.99):7.1f} ms   "
        f"max {max(ms):7.1f} ms   (mean {statistics.fmean(ms):.1f} ms)"
    )


def commit_events(
    uow: UnitOfWork,
    phase: str,
    count: int,
    *,
    per_tx: int,
    streams: int,
    rate: float = 0,
    event: type[BenchPinged] = BenchPinged,
) -> dict[int, float]:
    """Commit `count` events, `per_tx` a transaction, at most `rate` a second (0: flat out).

    Returns n -> the time its transaction committed.
    """
    commits: dict[int, float] = {}
    started = time.monotonic()
    for start in range(0, count, per_tx):
        if rate:
            time.sleep(max(0.0, started + start / rate - time.monotonic()))
        numbers = range(start, min(start + per_tx, count))
        with uow:
            for n in numbers:
                uow.add_event(event(stream=f"s{n % streams}", phase=phase, n=n))
            uow.commit()
        now = time.time()
        for n in numbers:
            commits[n] = now
    return commits


def broker_baseline(
    amqp_url: str, namespace: str, *, count: int, batch: int
) -> tuple[float, float]:
    """Messages/s to a durable queue: confirms pipelined per batch, and one by one (kombu)."""
    queue_name = f"{namespace}.bench.baseline"
    connection = connect(amqp_url, name="bench-baseline")
    try:
        setup = connection.channel()
        setup.queue_declare(queue_name, durable=True, auto_delete=False)
        publisher = ConfirmingPublisher(connection)
        started = time.perf_counter()
        for _ in range(0, count, batch):
            publisher.publish(
                ("", queue_name, amqp.Message(BASELINE_BODY, delivery_mode=2)) for _ in range(batch)
            )
        pipelined = count / (time.perf_counter() - started)
        setup.queue_purge(queue_name)
    finally:
        close_quietly(connection)
    one_by_one_count = max(count // 10, 100)
    with Connection(amqp_url, transport_options={"confirm_publish": True}) as conn:
        producer = Producer(conn.channel())
        target = KombuQueue(queue_name, Exchange(""), routing_key=queue_name, durable=True)
        started = time.perf_counter()
        for _ in range(one_by_one_count):
            producer.publish(BASELINE_BODY, routing_key=queue_name, delivery_mode=2, declare=[])
        one_by_one = one_by_one_count / (time.perf_counter() - started)
        target(conn.channel()).delete()
    return pipelined, one_by_one


def broker_latency(amqp_url: str, namespace: str, *, count: int, rate: float) -> list[float]:
    """Publish -> delivery milliseconds of persistent messages sent one at a time at `rate`/s.

    Each message is published and its confirm awaited (as a relay does with a one-event batch);
    a consumer on its own connection and thread acks what it receives.
    """
    queue_name = f"{namespace}.bench.latency"
    received: dict[int, float] = {}
    ready, done = threading.Event(), threading.Event()

    def consume() -> None:
        connection = connect(amqp_url, name="bench-latency-consumer")
        try:
            channel = connection.channel()
            channel.queue_declare(queue_name, durable=True, auto_delete=False)
            channel.basic_qos(0, 256, False)

            def on_message(message: amqp.Message) -> None:
                received[int(message.properties["message_id"])] = time.time()
                channel.basic_ack(message.delivery_tag)
                if len(received) == count:
                    done.set()

            channel.basic_consume(queue_name, callback=on_message)
            ready.set()
            while not done.is_set():
                try:
                    connection.drain_events(timeout=0.5)
                except TimeoutError:
                    continue
            channel.queue_delete(queue_name)
        finally:
            close_quietly(connection)

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    if not ready.wait(30):
        raise SystemExit("the baseline consumer did not start")
    connection = connect(amqp_url, name="bench-latency-publisher")
    sent: dict[int, float] = {}
    try:
        publisher = ConfirmingPublisher(connection)
        started = time.monotonic()
        for n in range(count):
            time.sleep(max(0.0, started + n / rate - time.monotonic()))
            message = amqp.Message(BASELINE_BODY, delivery_mode=2, message_id=str(n))
            sent[n] = time.time()
            publisher.publish([("", queue_name, message)])
    finally:
        close_quietly(connection)
    if not done.wait(60):
        raise SystemExit(f"the baseline consumer received {len(received)} of {count}")
    consumer.join(10)
    return [(received[n] - sent[n]) * 1000 for n in range(count)]


def start_relay(env: dict[str, str], log_path: Path, batch_size: int | None) -> ManagedProcess:
    """`dockyard relay auth` as a subprocess, its JSON logs in `log_path`."""
    argv = [str(BIN / "dockyard"), "relay", SCHEMA]
    if batch_size:
        argv += ["--batch-size", str(batch_size)]
    return spawn(argv, env=env, log=log_path)


def run(args: argparse.Namespace) -> None:
    """Provision, measure, print, record, clean up."""
    phases = set(args.phases.split(","))
    unknown = phases - PHASES
    if unknown:
        raise SystemExit(f"unknown phase(s) {sorted(unknown)}; choose from {sorted(PHASES)}")
    environment = TestEnvironment(REGISTRY)
    print(f"provisioning throwaway database and namespace {environment.namespace} ...")
    log_path = Path(f"/tmp/{environment.namespace}-relay.log")
    with environment:
        env = {**os.environ, **environment.env(), "LOG_LEVEL": "WARNING"}
        relay = consumer = None
        try:
            engine = make_engine(environment.service_url(SCHEMA), schema=SCHEMA, pool_size=2)
            with engine.begin() as conn:
                conn.execute(text("CREATE TABLE bench_effects (event_id uuid PRIMARY KEY, n int)"))
            uow = UnitOfWork(session_factory(engine), schema=SCHEMA, source=SCHEMA)

            pipelined, one_by_one = broker_baseline(
                environment.amqp_url,
                environment.namespace,
                count=args.events,
                batch=BASELINE_BATCH,
            )
            broker_ms = broker_latency(
                environment.amqp_url, environment.namespace, count=PACED_RATE, rate=PACED_RATE
            )
            print("\nbaseline, broker alone (persistent messages, durable queue):")
            print(f"  confirms pipelined per batch of {BASELINE_BATCH}: {pipelined:8.0f} msg/s")
            print(f"  confirm waited per message (kombu)     : {one_by_one:8.0f} msg/s")
            print(
                f"  publish -> delivery at {PACED_RATE}/s, one confirmed publish at a time: p50 "
                f"{percentile(broker_ms, 0.5):.1f} ms   p99 {percentile(broker_ms, 0.99):.1f} ms"
            )

            context = multiprocessing.get_context("spawn")
            acks_queue, ready = context.Queue(), context.Event()
            consumer = context.Process(
                target=consumer_process, args=(environment.env(), acks_queue, ready), daemon=True
            )
            consumer.start()
            if not ready.wait(30):
                raise SystemExit("the consumer did not start")
            acks = Acks(acks_queue)
            relay = start_relay(env, log_path, args.batch_size)

            # Wait until the relay is up (one event through) so its start-up is not in the figures.
            commit_events(uow, "warmup", 1, per_tx=1, streams=1)
            acks.wait_for("warmup", 1, 60)
            expected = 1

            if "idle" in phases:
                idle_count = 200
                commits = commit_events(uow, "idle", idle_count, per_tx=1, streams=20, rate=50)
                acks.wait_for("idle", idle_count, 60)
                expected += idle_count
                print(f"\nidle: {idle_count} single-event transactions, 20 ms apart")
                print(f"  commit -> consumer ack  {latency_line(commits, acks.of('idle'))}")

            if "paced" in phases:
                paced = args.events // 2
                commits = commit_events(
                    uow, "paced", paced, per_tx=10, streams=100, rate=PACED_RATE
                )
                acks.wait_for("paced", paced, 120)
                expected += paced
                print(f"\npaced: {paced} events at {PACED_RATE}/s, 10 per transaction")
                acked = acks.of("paced")
                print(f"  commit -> consumer ack  {latency_line(commits, acked)}")
                record(
                    "outbox_relay",
                    f"commit -> consumer ack p50 at {PACED_RATE:,} events/s",
                    percentile([(acked[n] - commits[n]) * 1000 for n in commits], 0.5),
                    "ms",
                    baseline=percentile(broker_ms, 0.5),
                    baseline_label="broker alone, publish -> delivery p50",
                    target=20,
                    compare="absolute",
                    better="lower",
                )

            if "flat" in phases:
                started = time.time()
                commits = commit_events(uow, "stream", args.events, per_tx=args.per_tx, streams=100)
                committed = time.time()
                acks.wait_for("stream", args.events, 120)
                expected += args.events
                acked = acks.of("stream")
                finished = max(acked.values())
                print(
                    f"\nflat out: {args.events} events committed as fast as one producer can, "
                    f"{args.per_tx} per transaction"
                )
                print(
                    f"  producer commit rate    {args.events / (committed - started):8.0f} events/s"
                )
                print(
                    f"  first commit -> last ack{args.events / (finished - started):8.0f} events/s"
                )
                print(f"  commit -> consumer ack  {latency_line(commits, acked)}")

            for phase, event, handler in (
                ("backlog", BenchPinged, "a handler per event"),
                ("backlog-batched", BenchBatchPinged, "a handler per batch"),
            ):
                if phase not in phases:
                    continue
                stop(relay)
                commit_events(uow, phase, args.events, per_tx=100, streams=100, event=event)
                started = time.time()
                relay = start_relay(env, log_path, args.batch_size)
                acks.wait_for(phase, args.events, 120)
                expected += args.events
                acked = acks.of(phase)
                first, finished = min(acked.values()), max(acked.values())
                print(
                    f"\n{phase}: {args.events} events waiting in the outbox, then the relay "
                    f"starts; the consumer runs {handler}"
                )
                print(
                    f"  first ack -> last ack   {args.events / (finished - first):8.0f} events/s "
                    f"({finished - first:.2f} s)"
                )
                print(
                    f"  relay start -> last ack {args.events / (finished - started):8.0f} events/s "
                    f"({finished - started:.2f} s, with the relay process's start-up)"
                )
                record(
                    "outbox_relay",
                    f"{args.events:,}-event backlog, commit -> ack, {handler}",
                    args.events / (finished - first),
                    "events/s",
                    baseline=pipelined,
                    baseline_label="broker alone, pipelined confirms",
                    target=5000,
                    compare="absolute",
                )

            with engine.connect() as conn:
                left = conn.execute(text("SELECT count(*) FROM outbox")).scalar_one()
                effects = conn.execute(text("SELECT count(*) FROM bench_effects")).scalar_one()
            print(f"\noutbox rows left: {left}; handler rows: {effects} (expected {expected})")
            engine.dispose()
        finally:
            if relay is not None:
                stop(relay)
            if consumer is not None and consumer.is_alive():
                consumer.terminate()
                consumer.join(30)
            print(f"(relay log: {log_path})")


def main() -> None:
    """Parse arguments and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000, help="events per phase")
    parser.add_argument(
        "--batch-size", type=int, default=None, help="relay batch size (default: the relay's)"
    )
    parser.add_argument("--per-tx", type=int, default=10, help="events per producer commit")
    parser.add_argument(
        "--phases", default=",".join(sorted(PHASES)), help="comma-separated phases to run"
    )
    run(parser.parse_args())


if __name__ == "__main__":
    main()
