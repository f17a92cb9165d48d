"""Benchmark: the seed's overload scenario, uploads at a fixed rate, processing at half of it.

Run: `make overload` (10 minutes of load) or `.venv/bin/python bench/overload.py [--rate 560]
[--duration 600] [--process-rate RATE/2] [--plot bench/results/overload.png]`. Not in `make
bench`'s default set: it takes the duration plus the drain.

The brief: service A receives 200,000 requests an hour (56/s) while service B processes 100,000
an hour, and none may be lost. Here service A is the files service's intake, small uploads
through the gateway's GraphQL multipart upload (as apollo-upload-client sends them), and
service B its processing (the Celery task `files.process_file`), throttled to half the
submission rate with FILES_PROCESSING_RATE_LIMIT. Everything runs for real as subprocesses on
loopback: auth and files under gunicorn, the gateway under uvicorn, the files relay, event
consumer and Celery worker, on a throwaway TestEnvironment (database schemas, namespace).

The uploads come from `--users` users in turn (64): one user's uploads serialize on their storage
quota row, which each upload's transaction charges, and the brief's traffic is many users'.
The load generator is an asyncio client (aiohttp) with an open model: it sends on schedule
whatever the answers, at most `--max-in-flight` at once (a send the schedule could not make
because that many were outstanding is counted as missed, so a slow gateway shows). A refusal
(SERVICE_UNAVAILABLE with Retry-After, the intake back-pressure of FILES_INTAKE_MAX_BACKLOG) is
counted as refused, not lost: the client was told to come back. Every second a sampler reads the
backlog: files accepted but not yet processed (the database), the Celery processing queue, the
files consumer's queue and the outbox (the broker and the database). After the load stops it
waits for the backlog to drain, then checks from the database and from a queue of its own bound
to files.FileProcessed:

* lost: accepted (the client saw the File) but not PROCESSED at the end;
* duplicated: a file with more than one FileProcessed event (processed twice; redelivered
  copies of one event are at-least-once delivery, dropped by the consumers' inbox, and printed
  apart).

Printed: accepted/s, processed/s, peak backlog, drain time, lost, duplicated; the backlog over
time goes to a PNG. Recorded (bench/results.py): accepted/s against the brief's rate times ten
(at least 560/s), the accepted rate over the processed rate (at least 1.9: the overload really
happened), lost and duplicated (0 each).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import amqp
from results import record
from sqlalchemy import text
from support import BIN, ROOT, free_port, gateway_command, gateway_env, register, serve, spawn, stop

from services.files.handlers import SUBSCRIPTIONS
from services.gateway.tests.apollo import apollo_upload
from services.registry import REGISTRY
from shared.db import make_engine
from shared.messaging.broker import close_quietly, connect
from shared.messaging.topology import Topology
from shared.testing import TestEnvironment

NAME = "overload"
#: The brief's rate of service A: 200,000 requests an hour.
BRIEF_RATE = 200_000 / 3600
#: The issue's target: at least ten times the brief's rate, rounded up.
TARGET_RATE = 560.0
RESULTS_DIR = ROOT / "bench" / "results"
UNFINISHED = "SELECT count(*) FROM files WHERE status IN ('UPLOADED', 'PROCESSING')"


@dataclass
class Tally:
    """What the load generator saw, per outcome, and the ids of the files it was answered."""

    sent: int = 0
    missed: int = 0
    refused: int = 0
    refused_without_retry_after: int = 0
    timeouts: int = 0
    errors: collections.Counter = field(default_factory=collections.Counter)
    accepted_ids: list[str] = field(default_factory=list)
    #: Whole seconds since the load began -> files accepted in that second.
    accepted_per_second: collections.Counter = field(default_factory=collections.Counter)
    refused_per_second: collections.Counter = field(default_factory=collections.Counter)


@dataclass
class Sample:
    """One reading of the backlog, `at` seconds after the load began."""

    at: float
    unfinished: int
    processing_queue: int
    event_queue: int
    outbox: int
    processed: int


async def send_one(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict, tally: Tally, t0: float
) -> None:
    """Upload once; count the outcome."""
    try:
        async with session.post(url, data=body, headers=headers) as response:
            payload = json.loads(await response.read())
            retry_after = response.headers.get("Retry-After")
    except TimeoutError:
        tally.timeouts += 1
        return
    except (aiohttp.ClientError, ValueError) as exc:
        tally.errors[type(exc).__name__] += 1
        return
    second = int(time.monotonic() - t0)
    uploaded = (payload.get("data") or {}).get("uploadFile")
    if uploaded:
        tally.accepted_ids.append(uploaded["id"])
        tally.accepted_per_second[second] += 1
        return
    codes = [e.get("extensions", {}).get("code") for e in payload.get("errors") or ()]
    if codes == ["SERVICE_UNAVAILABLE"] and retry_after is not None:
        tally.refused += 1
        tally.refused_per_second[second] += 1
    elif codes == ["SERVICE_UNAVAILABLE"]:
        tally.refused_without_retry_after += 1
    else:
        tally.errors[",".join(map(str, codes)) or f"HTTP {response.status}"] += 1


async def generate_load(
    url: str, tokens: list[str], *, rate: float, duration: float, max_in_flight: int, tally: Tally
) -> float:
    """Send uploads on a fixed schedule for `duration` s, the users in turn; return the start."""
    request = apollo_upload("blob.bin", file_type="application/octet-stream")
    body = request.body(os.urandom(256))
    headers = [request.headers(token) for token in tokens]
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=max_in_flight)
    in_flight: set[asyncio.Task] = set()
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        t0 = time.monotonic()
        total = int(rate * duration)
        for n in range(total):
            delay = t0 + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if len(in_flight) >= max_in_flight:
                tally.missed += 1
                continue
            tally.sent += 1
            own = headers[n % len(headers)]
            task = asyncio.create_task(send_one(session, url, body, own, tally, t0))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        if in_flight:
            await asyncio.wait(in_flight)
    return t0


async def closed_loop_capacity(
    url: str, tokens: list[str], *, concurrency: int, seconds: float
) -> Tally:
    """Uploads back to back from `concurrency` senders for `seconds`: what the gateway can take."""
    request = apollo_upload("blob.bin", file_type="application/octet-stream")
    body = request.body(os.urandom(256))
    headers = [request.headers(token) for token in tokens]
    tally = Tally()
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        t0 = time.monotonic()

        async def sender(index: int) -> None:
            own = headers[index % len(headers)]
            while time.monotonic() - t0 < seconds:
                tally.sent += 1
                await send_one(session, url, body, own, tally, t0)

        await asyncio.gather(*(sender(i) for i in range(concurrency)))
    return tally


class Sampler(threading.Thread):
    """Reads the backlog every second until stopped (database and broker, read-only)."""

    def __init__(self, database_url: str, amqp_url: str, namespace: str) -> None:
        super().__init__(daemon=True)
        self.engine = make_engine(database_url, schema="files")
        self.amqp_url = amqp_url
        self.topology = Topology(namespace)
        self.processing_queue = f"{namespace}.files.processing"
        self.event_queues = [self.topology.consumer_queue(s.name) for s in SUBSCRIPTIONS]
        self.processed_queue = processed_queue(namespace)
        self.samples: list[Sample] = []
        self.t0 = time.monotonic()
        self.halt = threading.Event()

    def depth(self, channel: amqp.Channel, queue: str) -> int:
        """Messages ready in `queue` (0 if it is not declared yet)."""
        try:
            return channel.queue_declare(queue, passive=True)[1]
        except amqp.exceptions.NotFound:
            return 0

    def read(self) -> Sample:
        """One sample now."""
        with self.engine.connect() as conn:
            unfinished = conn.execute(text(UNFINISHED)).scalar_one()
            outbox = conn.execute(text("SELECT count(*) FROM outbox")).scalar_one()
        connection = connect(self.amqp_url, name="bench-overload-sampler")
        try:
            depths = {}
            for queue in [self.processing_queue, self.processed_queue, *self.event_queues]:
                # A passive declare of a missing queue closes the channel: one channel each.
                depths[queue] = self.depth(connection.channel(), queue)
        finally:
            close_quietly(connection)
        return Sample(
            at=time.monotonic() - self.t0,
            unfinished=unfinished,
            processing_queue=depths[self.processing_queue],
            event_queue=sum(depths[q] for q in self.event_queues),
            outbox=outbox,
            processed=depths[self.processed_queue],
        )

    def run(self) -> None:
        """Sample once a second."""
        while not self.halt.is_set():
            started = time.monotonic()
            self.samples.append(self.read())
            self.halt.wait(max(0.0, 1.0 - (time.monotonic() - started)))


def processed_queue(namespace: str) -> str:
    """The benchmark's own queue of FileProcessed events, read at the end."""
    return f"{namespace}.bench.overload.processed"


def declare_processed_queue(amqp_url: str, namespace: str) -> None:
    """Bind the benchmark's queue to files.FileProcessed before any upload."""
    topology = Topology(namespace)
    connection = connect(amqp_url, name="bench-overload-setup")
    try:
        channel = connection.channel()
        topology.declare_events(channel)
        channel.queue_declare(processed_queue(namespace), durable=True, auto_delete=False)
        channel.queue_bind(
            processed_queue(namespace), topology.events_exchange, "files.FileProcessed"
        )
    finally:
        close_quietly(connection)


def processed_events(amqp_url: str, namespace: str) -> dict[str, collections.Counter]:
    """Every FileProcessed event received: file id -> copies of each event id."""
    seen: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    connection = connect(amqp_url, name="bench-overload-check")
    try:
        channel = connection.channel()
        queue = processed_queue(namespace)
        remaining = channel.queue_declare(queue, passive=True)[1]
        channel.basic_qos(0, 5000, False)

        def take(message: amqp.Message) -> None:
            envelope = json.loads(message.body)
            seen[envelope["aggregate_id"]][message.properties.get("message_id")] += 1
            channel.basic_ack(message.delivery_tag)

        channel.basic_consume(queue, callback=take)
        taken = 0
        while taken < remaining:
            try:
                connection.drain_events(timeout=10)
            except TimeoutError:
                break
            taken = sum(sum(c.values()) for c in seen.values())
        channel.queue_delete(queue)
    finally:
        close_quietly(connection)
    return seen


def wait_drained(sampler: Sampler, accepted: int, timeout: float) -> float | None:
    """Seconds from now until nothing accepted waits for processing; None at the timeout."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if sampler.samples:
            last = sampler.samples[-1]
            if last.at > started - sampler.t0 and last.unfinished == 0 and last.outbox == 0:
                if last.processed >= accepted:
                    return last.at - (started - sampler.t0)
        time.sleep(0.5)
    return None


def plot(samples: list[Sample], tally: Tally, load_end: float, path: Path, title: str) -> None:
    """Backlog, queue depths and rates over time, to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    at = [s.at for s in samples]
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    top.plot(at, [s.unfinished for s in samples], label="accepted, not processed (database)")
    top.plot(at, [s.processing_queue for s in samples], label="Celery processing queue")
    top.plot(at, [s.event_queue for s in samples], label="files event queues")
    top.plot(at, [s.outbox for s in samples], label="files outbox")
    top.axvline(load_end, color="grey", linestyle="--", label="load stops")
    top.set_ylabel("backlog (files / messages)")
    top.legend(loc="upper left")
    top.set_title(title)
    seconds = range(int(max(at, default=0)) + 1)
    bottom.plot(
        list(seconds), [tally.accepted_per_second.get(s, 0) for s in seconds], label="accepted/s"
    )
    processed_rate = [
        (b.processed - a.processed) / (b.at - a.at)
        for a, b in zip(samples, samples[1:], strict=False)
    ]
    bottom.plot(at[1:], processed_rate, label="processed/s")
    if tally.refused:
        bottom.plot(
            list(seconds),
            [tally.refused_per_second.get(s, 0) for s in seconds],
            label="refused/s (503, Retry-After)",
        )
    bottom.axvline(load_end, color="grey", linestyle="--")
    bottom.set_xlabel("seconds since the load began")
    bottom.set_ylabel("per second")
    bottom.legend(loc="upper right")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    """Provision, start every process, load, drain, check, print, plot, record."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=TARGET_RATE, help="uploads per second")
    parser.add_argument("--duration", type=float, default=600, help="seconds of load")
    parser.add_argument(
        "--process-rate", type=float, default=None, help="processing throttle (default rate/2)"
    )
    parser.add_argument("--users", type=int, default=64, help="users the uploads come from")
    parser.add_argument("--max-in-flight", type=int, default=512, help="outstanding uploads")
    parser.add_argument("--gateway-workers", type=int, default=2, help="uvicorn processes")
    parser.add_argument("--files-workers", type=int, default=2, help="gunicorn processes")
    parser.add_argument(
        "--intake-max-backlog",
        type=int,
        default=None,
        help="FILES_INTAKE_MAX_BACKLOG (default: the service's)",
    )
    parser.add_argument(
        "--capacity-seconds", type=float, default=10, help="closed-loop baseline's length"
    )
    parser.add_argument("--capacity-senders", type=int, default=32, help="its concurrent senders")
    parser.add_argument("--drain-timeout", type=float, default=None, help="default: 2x duration")
    parser.add_argument("--plot", type=Path, default=RESULTS_DIR / "overload.png")
    args = parser.parse_args(argv)
    process_rate = args.process_rate or args.rate / 2

    with (
        TestEnvironment(REGISTRY) as environment,
        tempfile.TemporaryDirectory(
            prefix="dockyard-bench-overload-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None
        ) as storage,
    ):
        auth_port, files_port, gateway_port = free_port(), free_port(), free_port()
        env = {
            **gateway_env(environment, auth_port),
            "FILES_SERVICE_URL": f"http://127.0.0.1:{files_port}",
            "FILES_STORAGE_DIR": storage,
            "FILES_PROCESSING_RATE_LIMIT": f"{process_rate:g}/s",
            # One client address sends everything: the per-address cap is not what is measured.
            "GATEWAY_MAX_CONNECTIONS_PER_CLIENT": "0",
            "WEB_CONCURRENCY": str(args.files_workers),
        }
        if args.intake_max_backlog is not None:
            env["FILES_INTAKE_MAX_BACKLOG"] = str(args.intake_max_backlog)
        namespace = environment.namespace
        declare_processed_queue(environment.amqp_url, namespace)

        def gunicorn(name: str, port: int) -> list[str]:
            return [
                str(BIN / "gunicorn"), "-c", str(ROOT / "deploy" / "gunicorn.conf.py"),
                "--name", f"dockyard-{name}", "--bind", f"127.0.0.1:{port}",
                "--log-level", "warning", f"services.{name}.wsgi:app",
            ]  # fmt: skip

        logs = Path(tempfile.mkdtemp(prefix="dockyard-bench-overload-logs-"))
        helpers = [
            spawn([str(BIN / "dockyard"), "relay", "files"], env=env, log=logs / "relay.log"),
            spawn([str(BIN / "dockyard"), "consume", "files"], env=env, log=logs / "consume.log"),
            spawn(
                [
                    str(BIN / "celery"),
                    "-A",
                    "services.files.worker:celery_app",
                    "worker",
                    "--concurrency",
                    "2",
                    "--hostname",
                    f"bench-{uuid.uuid4().hex[:6]}@%h",
                    "--without-gossip",
                    "--without-mingle",
                    "--loglevel",
                    "WARNING",
                ],  # fmt: skip
                env=env,
                log=logs / "worker.log",
            ),
        ]
        gateway = [*gateway_command(gateway_port), "--workers", str(args.gateway_workers)]
        try:
            with (
                serve(
                    "auth", gunicorn("auth", auth_port), env, auth_port, ready_timeout=120
                ) as auth_pid,
                serve(
                    "files", gunicorn("files", files_port), env, files_port, ready_timeout=120
                ) as files_pid,
                serve("gateway", gateway, env, gateway_port, ready_timeout=120) as gateway_pid,
            ):
                roots = {
                    "gateway": [gateway_pid],
                    "files": [files_pid],
                    "auth": [auth_pid],
                    "relay, consumer, worker": [helper.pid for helper in helpers],
                }
                # Many users, as the brief's traffic comes from: one user's uploads serialize on
                # their storage quota row (charged in each upload's transaction).
                tokens = [register(gateway_port) for _ in range(args.users)]
                url = f"http://127.0.0.1:{gateway_port}/graphql"
                started = time.monotonic()
                cpu_before = {name: cpu_seconds(pids) for name, pids in roots.items()}
                capacity = asyncio.run(
                    closed_loop_capacity(
                        url,
                        tokens,
                        concurrency=args.capacity_senders,
                        seconds=args.capacity_seconds,
                    )
                )
                capacity_rate = len(capacity.accepted_ids) / (time.monotonic() - started)
                cpu_used = {n: cpu_seconds(pids) - cpu_before[n] for n, pids in roots.items()}
                print(
                    f"capacity: {capacity_rate:,.1f} uploads/s accepted back to back by "
                    f"{args.capacity_senders} senders in {args.capacity_seconds:g} s "
                    f"(refused {capacity.refused}, other failures "
                    f"{capacity.refused_without_retry_after + capacity.timeouts}"
                    f"{'' if not capacity.errors else ', ' + str(dict(capacity.errors))})",
                    flush=True,
                )
                sampler = Sampler(
                    env["FILES_DATABASE_URL"], environment.amqp_url, environment.namespace
                )
                tally = Tally()
                print(
                    f"load: {args.rate:g} uploads/s for {args.duration:g} s; processing throttled "
                    f"to {process_rate:g}/s; logs in {logs}",
                    flush=True,
                )
                sampler.start()
                asyncio.run(
                    generate_load(
                        url,
                        tokens,
                        rate=args.rate,
                        duration=args.duration,
                        max_in_flight=args.max_in_flight,
                        tally=tally,
                    )
                )
                load_end = time.monotonic() - sampler.t0
                accepted = len(tally.accepted_ids)
                print(f"load done after {load_end:.0f} s; draining", flush=True)
                drain = wait_drained(
                    sampler, accepted, args.drain_timeout or max(2 * args.duration, 120)
                )
                sampler.halt.set()
                sampler.join()
                statuses = file_statuses(env["FILES_DATABASE_URL"])
                events = processed_events(environment.amqp_url, namespace)
        finally:
            stop(*helpers)

    known = set(capacity.accepted_ids)
    statuses = {i: status for i, status in statuses.items() if i not in known}
    report(
        args, process_rate, tally, sampler.samples, load_end, drain, statuses, events, capacity_rate
    )
    print_cpu(cpu_used, len(capacity.accepted_ids) + capacity.refused)
    return 0


def tree(pid: int) -> list[int]:
    """A process and its descendants (gunicorn and uvicorn workers, Celery's pool)."""
    found = [pid]
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                found += tree(int(child))
    except OSError:
        pass
    return found


def cpu_seconds(roots: list[int]) -> float:
    """User plus system CPU seconds of the processes under `roots` so far (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in (p for root in roots for p in tree(root)):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def print_cpu(used: dict[str, float], answered: int) -> None:
    """CPU each part spent per upload of the closed-loop baseline: what bounds the rate.

    Unlike the rates, nearly independent of what else runs on the machine, so it says what an
    idle machine could take: its CPUs over the CPU seconds one upload costs. PostgreSQL's and
    RabbitMQ's share is not in it (they serve other work too), nor the load generator's.
    """
    answered = max(answered, 1)
    print(f"CPU per upload of the closed-loop baseline ({answered:,} answered):")
    for name, seconds in used.items():
        print(f"  {name:<24} {seconds:8.1f} s  {1000 * seconds / answered:6.2f} ms")
    per_upload = sum(used.values()) / answered
    ceiling = (os.cpu_count() or 1) / per_upload if per_upload else float("inf")
    print(
        f"  {'total':<24} {sum(used.values()):8.1f} s  {1000 * per_upload:6.2f} ms -> at most "
        f"{ceiling:,.0f} uploads/s on {os.cpu_count()} idle CPUs, before PostgreSQL's share"
    )


def file_statuses(database_url: str) -> dict[str, str]:
    """Every stored file's status by id."""
    engine = make_engine(database_url, schema="files")
    try:
        with engine.connect() as conn:
            return {str(i): s for i, s in conn.execute(text("SELECT id, status FROM files"))}
    finally:
        engine.dispose()


def report(
    args, process_rate, tally, samples, load_end, drain, statuses, events, capacity_rate
) -> None:
    """Print the figures, plot the backlog, record the targets."""
    accepted = len(tally.accepted_ids)
    lost = sum(1 for i in tally.accepted_ids if statuses.get(i) != "PROCESSED")
    duplicated = sum(1 for copies in events.values() if len(copies) > 1)
    redelivered = sum(sum(copies.values()) - len(copies) for copies in events.values())
    unanswered = len(statuses) - len(set(tally.accepted_ids) & statuses.keys())
    during = [s for s in samples if s.at <= load_end]
    processed_during = during[-1].processed - during[0].processed if len(during) > 1 else 0
    span = during[-1].at - during[0].at if len(during) > 1 else 1.0
    accepted_rate = accepted / load_end
    processed_rate = processed_during / span
    peak = max(samples, key=lambda s: s.unfinished)
    print(
        f"sent {tally.sent:,} ({tally.missed:,} missed: {args.max_in_flight} in flight), accepted "
        f"{accepted:,}, refused {tally.refused:,} (503 + Retry-After; "
        f"{tally.refused_without_retry_after} without), timeouts {tally.timeouts}, "
        f"errors {dict(tally.errors) or 0}"
    )
    print(f"accepted/s: {accepted_rate:,.1f}  (brief: {BRIEF_RATE:.1f}/s, target {TARGET_RATE:g})")
    print(f"processed/s during the load: {processed_rate:,.1f}  (throttle {process_rate:g}/s)")
    print(
        f"peak backlog: {peak.unfinished:,} files at {peak.at:.0f} s (processing queue "
        f"{max(s.processing_queue for s in samples):,}, event queues "
        f"{max(s.event_queue for s in samples):,}, outbox {max(s.outbox for s in samples):,})"
    )
    print(
        f"drain time after the load stopped: {'not drained' if drain is None else f'{drain:.0f} s'}"
    )
    print(
        f"lost: {lost}  duplicated: {duplicated}  (FileProcessed copies redelivered: {redelivered};"
        f" stored without the client seeing the answer: {unanswered})"
    )
    title = (
        f"{args.rate:g} uploads/s for {args.duration:g} s, processing at {process_rate:g}/s: "
        f"accepted {accepted_rate:,.0f}/s, lost {lost}, duplicated {duplicated}"
    )
    plot(samples, tally, load_end, args.plot, title)
    print(f"plot: {args.plot}")
    record(
        NAME,
        f"accepted uploads/s through the gateway, offered {args.rate:g}/s",
        accepted_rate,
        "uploads/s",
        baseline=capacity_rate,
        baseline_label="closed-loop capacity",
        target=TARGET_RATE,
        compare="absolute",
    )
    record(
        NAME,
        "accepted/s over processed/s",
        accepted_rate,
        "uploads/s",
        baseline=max(processed_rate, 1e-9),
        baseline_label="processed/s",
        target=1.9,
    )
    for metric, value in (("lost results", lost), ("duplicated results", duplicated)):
        record(
            NAME,
            metric,
            float(value),
            "files",
            baseline=float(accepted),
            baseline_label="accepted",
            target=0,
            compare="absolute",
            better="lower",
        )


if __name__ == "__main__":
    sys.exit(main())
