"""Starting a task's attempt: claim a slot, run its container, record it RUNNING.

`start_when_free` claims a slot and starts the container, waiting for a free slot with a
`Listener` on transitions.SLOT_FREED_CHANNEL (which the steps that free a slot notify) rather
than a sleep. Two callers: the launcher process (`python -m services.tasks.launcher`, below)
starts a new task from its TaskCreated event, one broker hop after the commit; worker.py's
Celery start job starts retries and re-dispatched tasks. A task with an input file is started
from its TaskInputReady instead, once files has leased it the file (input_files.py).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from typing import Protocol

import amqp
from sqlalchemy.engine import Engine as DatabaseEngine

from services.tasks import dispatch, outputs, transitions
from services.tasks.config import TasksSettings
from services.tasks.containers import (
    ContainerEngine,
    EngineUnavailable,
    TaskRejected,
)
from services.tasks.executors import engine_from_settings
from services.tasks.input_staging import InputStaging
from services.tasks.models import SCHEMA
from shared.db import UnitOfWork, make_engine, session_factory
from shared.logging import configure_logging
from shared.messaging.broker import close_quietly, connect, drain_available, wait_readable
from shared.messaging.runtime import Stopper
from shared.messaging.topology import Topology
from shared.messaging.wire import envelope_from_message
from shared.pg_listen import ChannelListener
from shared.reconnect import Reconnects, is_database_outage

log = logging.getLogger(__name__)

#: Longest a start waiting for a slot goes without looking again, signal or not.
SLOT_RECHECK_SECONDS = 1.0
#: The same for the launcher's starts: its SlotGate loses no signal (after a lost connection it
#: wakes every waiter), so looking again is only for what cannot happen, and each look is a
#: claim under the capacity lock (eight waiters looking every second cost more than the starts).
GATED_RECHECK_SECONDS = 5.0
#: The queue of TaskCreated events the launcher consumes (once the event consumer's, so a
#: deployment that upgrades keeps its queue, bindings and waiting events).
LAUNCH_QUEUE = "tasks.dispatch"
#: TaskInputReady: a task with an input file starts once files leased it (input_files.py);
#: TaskReleased: a task with dependencies starts once they allow it (dependencies.py).
LAUNCH_BINDINGS = ("tasks.TaskCreated", "tasks.TaskInputReady", "tasks.TaskReleased")
#: How long a launcher thread retries a start through a database outage before it hands the
#: task to the Celery start job (which retries on); a start adopts its attempt, so it is safe.
OUTAGE_RETRY_SECONDS = 30.0


def start_attempt(
    uow: Callable[[], UnitOfWork],
    *,
    task_id: uuid.UUID,
    engine: ContainerEngine,
    settings: transitions.ExecutionSettings,
    inputs: InputStaging | None = None,
) -> str:
    """Start the task's current attempt, or a fairer task's; idempotent.

    Returns started, busy, done or failed, or `yielded` when the free slot went to a fairer
    waiting task (started here): the task still waits, so its start job is not settled.
    A task with an input file gets it from files first (`inputs`, input_staging.py).
    Raises EngineUnavailable for the caller to retry with backoff.
    """
    claim = transitions.claim_attempt(uow(), task_id=task_id, settings=settings)
    if claim.outcome != "start":
        return claim.outcome
    claimed = claim.spec.task_id
    try:
        output_dir = outputs.prepare_attempt_dir(
            settings.output_dir, claimed, claim.spec.attempt, user=settings.container_user
        )
    except OSError as exc:
        # An operator's problem (TASKS_OUTPUT_DIR unmounted, read-only): retried like the engine.
        raise EngineUnavailable(
            "OUTPUT_DIR_UNAVAILABLE", f"TASKS_OUTPUT_DIR cannot hold the task's /output: {exc}"
        ) from None
    spec = replace(claim.spec, output_dir=output_dir)
    try:
        if spec.input_filename is not None:
            if inputs is None:
                raise TaskRejected("INPUT_FILE_UNAVAILABLE", "This start cannot fetch input files.")
            inputs.stage(spec)
        container = engine.run(spec)
    except TaskRejected as exc:
        transitions.fail_start(
            uow(), task_id=claimed, code=exc.code, message=str(exc), output_dir=settings.output_dir
        )
        if inputs is not None:
            inputs.remove(claimed)
        return "failed" if claimed == task_id else "yielded"
    started_at = container.started_at(datetime.now(UTC))
    running = transitions.mark_running(
        uow(), task_id=claimed, container=container, started_at=started_at
    )
    if not running:
        engine.remove(container.name)
        # Cancelled while starting: this attempt never ran, so its /output has nothing to keep.
        outputs.remove_attempt_dir(settings.output_dir, claimed, spec.attempt)
    if claimed != task_id:
        return "yielded"
    return "started" if running else "done"


class SlotSignal(Protocol):
    """Tells a start waiting for a slot that one may have freed up."""

    def take_turn(self, timeout: float) -> bool:
        """Before a first look: wait for a signal if the slots are known to be full."""

    def forget(self) -> None:
        """Drop what was signalled so far (call before looking at the slots)."""

    def looked(self, outcome: str, *, signalled: bool) -> None:
        """What a look found (`signalled`: it followed a signal)."""

    def wait(self, timeout: float) -> bool:
        """Block until signalled (True) or `timeout` seconds pass (False)."""


def start_when_free(
    uow: Callable[[], UnitOfWork],
    *,
    task_id: uuid.UUID,
    engine: ContainerEngine,
    settings: transitions.ExecutionSettings,
    slots: SlotSignal,
    stopping: Callable[[], bool] = lambda: False,
    recheck: float = SLOT_RECHECK_SECONDS,
    inputs: InputStaging | None = None,
) -> str:
    """`start_attempt`, waiting up to slot_wait_seconds for a free slot while every one is taken.

    A look may start a fairer task instead (`yielded`); this one then waits on. Returns its
    outcome (`busy` when the wait ran out or `stopping` said so); raises EngineUnavailable.
    """
    deadline = time.monotonic() + settings.slot_wait_seconds
    signalled = slots.take_turn(min(settings.slot_wait_seconds, recheck))
    while True:
        slots.forget()
        outcome = start_attempt(
            uow, task_id=task_id, engine=engine, settings=settings, inputs=inputs
        )
        slots.looked(outcome, signalled=signalled)
        remaining = deadline - time.monotonic()
        if outcome not in ("busy", "yielded"):
            return outcome
        if remaining <= 0 or stopping():
            return "busy"
        if outcome == "yielded" and not signalled:
            # It found a free slot unasked: another may be free too, so look again at once.
            continue
        # Woken as soon as a task ends; the timeout is only a safety net for a lost signal.
        signalled = slots.wait(min(remaining, recheck))


class Listener(ChannelListener):
    """A SlotSignal of its own: one listening connection per waiting start (Celery's jobs)."""

    def take_turn(self, timeout: float) -> bool:
        """Look at once: a listener of its own knows nothing of other starts' looks."""
        return False

    def looked(self, outcome: str, *, signalled: bool) -> None:
        """Nothing to remember."""


class SlotGate:
    """The freed-slot signals of one process's start threads: each signal wakes one waiter.

    One listening connection, read by a thread of its own. A signal is a ticket that one
    waiting start takes, so a freed slot costs one claim rather than one per waiting thread
    (each claim is a transaction under the capacity lock). A ticket left from before a look
    costs one extra claim at most, so `forget` keeps them. Once a look found every slot taken,
    a new start waits for a ticket before its first look too: while tasks queue, each freed
    slot is then one claim that starts a task, not that one and a failing one per new message.
    A look that finds a slot free without a ticket (a signal missed) clears that.
    """

    def __init__(self, database: DatabaseEngine, channel: str, *, waiters: int) -> None:
        self.listener = Listener(database, channel)
        self.waiters = waiters
        self._tickets = 0
        self._condition = threading.Condition()
        #: The latest look found every slot taken (and no ticket came since without a look).
        self.full = False

    def take_turn(self, timeout: float) -> bool:
        """While the slots are full, wait up to `timeout` s for a ticket; True if one came."""
        return self.full and self.wait(timeout)

    def looked(self, outcome: str, *, signalled: bool) -> None:
        """Remember whether the slots are full (a start after a ticket says nothing new)."""
        if outcome == "busy":
            self.full = True
        elif not signalled:
            self.full = False
        elif outcome == "done":
            # Nothing to start (cancelled, say): the slot is still free for the next waiter.
            self._issue(1)

    def follow(self, stopper: Stopper) -> None:
        """Turn signals into tickets until stopped (run it in a thread of its own)."""
        reconnects = Reconnects("slot signals", log)
        while not stopper.is_set():
            try:
                self._issue(len(self.listener.receive(timeout=1.0)))
                reconnects.succeeded()
            except Exception as exc:
                delay = reconnects.failed(exc)
                self.listener.close()
                # Signals may have been missed meanwhile: every waiter looks again.
                self._issue(self.waiters)
                stopper.wait(delay)
        self.listener.close()
        # Stopping: every waiter looks once more and gives up.
        self._issue(self.waiters)

    def _issue(self, count: int) -> None:
        if count:
            with self._condition:
                self._tickets = min(self._tickets + count, self.waiters)
                self._condition.notify(count)

    def forget(self) -> None:
        """Keep the tickets: one issued before the caller's look costs one claim at most."""

    def wait(self, timeout: float) -> bool:
        """Take a ticket, waiting up to `timeout` seconds for one; False if none came."""
        with self._condition:
            if not self._tickets:
                self._condition.wait(timeout)
            if self._tickets:
                self._tickets -= 1
                return True
            return False


class Launcher:
    """Starts each new task from its TaskCreated event, in a pool of one thread per slot.

    It consumes LAUNCH_QUEUE with a prefetch of one message per thread and acks a message only
    once its start is settled: started, moot, failed for good, or handed to the Celery start
    job (no slot within TASKS_SLOT_WAIT_SECONDS, or the engine away: that job retries with
    backoff). A launcher that dies leaves its messages unacked, so the broker hands them to the
    next one, and the claim makes a repeated start harmless (it adopts the attempt's container).
    """

    def __init__(self, settings: TasksSettings, stopper: Stopper) -> None:
        self.settings = settings
        self.execution = transitions.ExecutionSettings.from_settings(settings)
        self.stopper = stopper
        self.threads = settings.WORKER_CONCURRENCY
        self.database = make_engine(
            settings.DATABASE_URL, schema=SCHEMA, pool_size=self.threads, hide_parameters=True
        )
        self.uow = partial(
            UnitOfWork, session_factory(self.database), schema=SCHEMA, source="tasks"
        )
        self.topology = Topology(
            settings.NAMESPACE, consumer_max_length=settings.EVENT_QUEUE_MAX_LENGTH
        )
        self._engine: ContainerEngine | None = None
        self._engine_lock = threading.Lock()
        self.slots = SlotGate(self.database, transitions.SLOT_FREED_CHANNEL, waiters=self.threads)
        self.inputs = InputStaging.from_settings(settings)
        #: Messages whose start is settled, for the loop to ack: (channel, delivery tag).
        self._settled: queue.SimpleQueue[tuple[amqp.Channel, int]] = queue.SimpleQueue()
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)

    def engine(self) -> ContainerEngine:
        """The Docker engine adapter, shared by the threads (made again after it failed)."""
        with self._engine_lock:
            if self._engine is None:
                self._engine = engine_from_settings(self.settings)
            return self._engine

    def _forget_engine(self) -> None:
        with self._engine_lock:
            self._engine = None

    def run(self) -> None:
        """Consume and start until stopped, reconnecting to the broker after failures."""
        reconnects = Reconnects("launcher", log)
        threading.Thread(
            target=self.slots.follow, args=(self.stopper,), name="slot-signals", daemon=True
        ).start()
        with ThreadPoolExecutor(self.threads, thread_name_prefix="start") as pool:
            while not self.stopper.is_set():
                connection = None
                try:
                    connection = connect(
                        self.settings.AMQP_URL, name=f"tasks-launcher-{os.getpid()}"
                    )
                    channel = connection.channel()
                    self.topology.declare_consumer(
                        channel, LAUNCH_QUEUE, bindings=LAUNCH_BINDINGS, retry_delays_ms=()
                    )
                    channel.basic_qos(0, self.threads, False)
                    channel.basic_consume(
                        self.topology.consumer_queue(LAUNCH_QUEUE),
                        callback=partial(self._received, pool, channel),
                    )
                    log.info("launcher started", extra={"threads": self.threads})
                    reconnects.succeeded()
                    self._serve(connection)
                    # Stopping: the starts under way end soon (slot waits give up), then ack.
                    pool.shutdown(wait=True)
                    self._ack_settled()
                except Exception as exc:
                    self.stopper.wait(reconnects.failed(exc))
                finally:
                    # Unacked messages go back to the queue (a start under way settles anyway).
                    close_quietly(connection)
        log.info("launcher stopped")

    def _serve(self, connection: amqp.Connection) -> None:
        while not self.stopper.is_set():
            readable = wait_readable(
                connection, 1.0, extra=[self._wake_read, self.stopper.fileno()]
            )
            if connection.sock.fileno() in readable:
                drain_available(connection)
            if self._wake_read in readable:
                try:
                    os.read(self._wake_read, 4096)
                except BlockingIOError:
                    pass
            self._ack_settled()
            connection.heartbeat_tick()

    def _ack_settled(self) -> None:
        while True:
            try:
                channel, tag = self._settled.get_nowait()
            except queue.Empty:
                return
            if channel.is_open:
                channel.basic_ack(tag)

    def _received(self, pool: ThreadPoolExecutor, channel: amqp.Channel, message) -> None:
        tag = message.delivery_info["delivery_tag"]
        try:
            task_id = uuid.UUID(str(envelope_from_message(message).payload["task_id"]))
        except (ValueError, KeyError, TypeError) as exc:
            log.error("dropping a message that names no task: %s", exc)
            channel.basic_ack(tag)
            return
        pool.submit(self._launch, channel, tag, task_id)

    def _launch(self, channel: amqp.Channel, tag: int, task_id: uuid.UUID) -> None:
        """Start one task and settle its message (left unacked if the start did not settle)."""
        try:
            outcome = self._start_through_outages(task_id)
            if outcome == "busy":
                if self.stopper.is_set():
                    return  # redelivered to the next launcher
                # Still no slot: the Celery start job takes over, so this message is acked now.
                dispatch.send_start(str(task_id))
        except EngineUnavailable as exc:
            self._forget_engine()
            delay = self.execution.backoff(1)
            log.warning("task %s: engine unavailable, retrying in %.1fs: %s", task_id, delay, exc)
            dispatch.send_start(str(task_id), countdown=delay)
        except Exception as exc:
            # The database away for longer than OUTAGE_RETRY_SECONDS, or a bug: the Celery start
            # job retries it (or, if the broker is away too, the message stays unacked and comes
            # back with the next connection).
            if is_database_outage(exc):
                log.warning("task %s: database still away; handing it to the start job", task_id)
            else:
                log.exception("task %s: start failed; handing it to the start job", task_id)
            dispatch.send_start(str(task_id), countdown=self.execution.backoff(1))
        self._settled.put((channel, tag))
        try:
            os.write(self._wake_write, b"\0")
        except BlockingIOError:
            pass

    def _start_through_outages(self, task_id: uuid.UUID) -> str:
        """start_when_free, retried promptly while the database is away (OUTAGE_RETRY_SECONDS)."""
        reconnects = Reconnects(f"task {task_id}: start", log, extra={"task_id": str(task_id)})
        deadline = time.monotonic() + OUTAGE_RETRY_SECONDS
        while True:
            try:
                outcome = start_when_free(
                    self.uow,
                    task_id=task_id,
                    engine=self.engine(),
                    settings=self.execution,
                    slots=self.slots,
                    stopping=self.stopper.is_set,
                    recheck=GATED_RECHECK_SECONDS,
                    inputs=self.inputs,
                )
            except Exception as exc:
                if not is_database_outage(exc) or time.monotonic() >= deadline:
                    raise
                if self.stopper.wait(reconnects.failed(exc)):
                    return "busy"  # stopping: redelivered to the next launcher
                continue
            reconnects.succeeded()
            return outcome


def main() -> int:
    """`python -m services.tasks.launcher`: start new tasks until SIGTERM or SIGINT."""
    settings = TasksSettings()
    configure_logging("tasks-launcher", settings.LOG_LEVEL)
    stopper = Stopper()
    stopper.install_signal_handlers()
    Launcher(settings, stopper).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
