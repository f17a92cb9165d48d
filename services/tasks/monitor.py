"""The monitor: owns every running task container through one watcher thread each.

Run: `python -m services.tasks.monitor`. The engine's event stream drives it: a task container's
`start` records the task RUNNING (if its start job has not yet) and starts its watcher, and a
`die` wakes that watcher to store the outcome at once (watcher.py); a cancel request reaches the
task's watcher through LISTEN/NOTIFY (service.CANCEL_REQUESTED_CHANNEL). Two passes are the safety
net: every TASKS_LOG_FLUSH_SECONDS it starts a watcher for any RUNNING task without one and
passes cancel requests on, and at start and every TASKS_RECONCILE_SECONDS a reconciler removes
labelled containers no task owns and the input directories of ended tasks, adopts containers a
crashed start job left behind and re-dispatches QUEUED tasks no start job touched lately (and
notification deliveries pending for longer than TASKS_NOTIFY_SWEEP_AFTER_SECONDS).
Everything it does is idempotent, so a monitor killed at any point is replaced by one that picks
up where it stopped.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from functools import partial

from sqlalchemy import text

from services.tasks import dispatch, transitions
from services.tasks.config import TasksSettings
from services.tasks.containers import (
    ContainerEngine,
    ContainerEvent,
    ContainerInfo,
    EngineUnavailable,
)
from services.tasks.executors import engine_from_settings
from services.tasks.input_staging import InputStaging
from services.tasks.launcher import Listener
from services.tasks.lifecycle import is_finished
from services.tasks.models import SCHEMA, TaskStatus
from services.tasks.notifications.delivery import stuck_deliveries
from services.tasks.service import CANCEL_REQUESTED_CHANNEL
from services.tasks.watcher import Watcher
from shared.db import UnitOfWork, make_engine, session_factory
from shared.logging import configure_logging
from shared.messaging.runtime import Stopper
from shared.reconnect import Backoff, Reconnects

log = logging.getLogger(__name__)

#: Only one monitor drives the engine at a time (a second one waits as a standby).
_LEADER_LOCK = 0x6D6F6E69746F72  # "monitor"


class Monitor:
    """The watcher threads, the engine events that start and wake them, and the reconciler."""

    def __init__(self, settings: TasksSettings, stopper: Stopper) -> None:
        self.settings = settings
        self.execution = transitions.ExecutionSettings.from_settings(settings)
        self.stopper = stopper
        self.database = make_engine(
            settings.DATABASE_URL, schema=SCHEMA, pool_size=20, hide_parameters=True
        )
        self.uow = partial(
            UnitOfWork, session_factory(self.database), schema=SCHEMA, source="tasks"
        )
        self.watchers: dict[uuid.UUID, Watcher] = {}
        self.watchers_lock = threading.Lock()
        self._engine: ContainerEngine | None = None
        self.inputs = InputStaging.from_settings(settings)

    def engine(self) -> ContainerEngine:
        """The Docker engine adapter (one per process, shared by every thread)."""
        if self._engine is None:
            self._engine = engine_from_settings(self.settings)
        return self._engine

    def _forget_engine(self) -> None:
        self._engine = None

    def run(self) -> None:
        """Lead, then follow the engine's events, watch and reconcile until stopped."""
        with self.database.connect() as leader:
            while not leader.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": _LEADER_LOCK}):
                leader.rollback()
                log.info("another monitor leads; standing by")
                if self.stopper.wait(5):
                    return
            leader.commit()
            log.info("monitor leads")
            threading.Thread(target=self.follow_events, name="engine-events", daemon=True).start()
            threading.Thread(
                target=self.follow_cancel_requests, name="cancel-requests", daemon=True
            ).start()
            next_reconcile = 0.0
            # An engine that stays away is retried ever less often (and logged as often).
            backoff = Backoff(initial=self.settings.LOG_FLUSH_SECONDS, maximum=30.0)
            # The database's outages are retried as every process retries them (shared.reconnect).
            reconnects = Reconnects("monitor pass", log)
            while not self.stopper.is_set():
                pause = self.settings.LOG_FLUSH_SECONDS
                try:
                    if time.monotonic() >= next_reconcile:
                        self.reconcile()
                        next_reconcile = time.monotonic() + self.settings.RECONCILE_SECONDS
                    self.watch_running()
                    backoff.reset()
                    reconnects.succeeded()
                except EngineUnavailable as exc:
                    pause = backoff.next()
                    log.warning("%s; retrying in %.1fs", exc, pause)
                    self._forget_engine()
                except Exception as exc:
                    pause = min(pause, reconnects.failed(exc))
                self.stopper.wait(pause)

    # -- events ------------------------------------------------------------------------------

    def follow_events(self) -> None:
        """Handle the engine's start and die events of task containers until stopped."""
        backoff = Backoff(initial=self.settings.LOG_FLUSH_SECONDS, maximum=30.0)
        while not self.stopper.is_set():
            try:
                for event in self.engine().events():
                    backoff.reset()
                    self.on_event(event)
            except EngineUnavailable as exc:
                log.warning("engine events: %s", exc)
            except Exception:
                log.exception("engine events failed; following them again")
            # What happened while the stream was down, the passes find.
            self.stopper.wait(backoff.next())

    def follow_cancel_requests(self) -> None:
        """Pass each cancel request on to its task's watcher as the request commits."""
        listener = Listener(self.database, CANCEL_REQUESTED_CHANNEL)
        reconnects = Reconnects("cancel requests", log)
        while not self.stopper.is_set():
            try:
                for payload in listener.receive(timeout=1.0):
                    self.on_cancel_request(payload)
                reconnects.succeeded()
            except Exception as exc:
                # What was asked meanwhile, the watch pass finds (cancel_requested_at is stored).
                delay = reconnects.failed(exc)
                listener.close()
                self.stopper.wait(delay)
        listener.close()

    def on_cancel_request(self, payload: str) -> None:
        """Tell the task's watcher, if this monitor has one, that its owner wants it stopped."""
        try:
            task_id = uuid.UUID(payload)
        except ValueError:
            log.warning("ignoring a cancel request for %r: not a task id", payload)
            return
        with self.watchers_lock:
            watcher = self.watchers.get(task_id)
        if watcher is not None and not watcher.cancel_requested:
            watcher.request_cancel()

    def on_event(self, event: ContainerEvent) -> None:
        """A task container started (record and watch it), ran out of memory or died (tell it)."""
        if event.action in ("oom", "die"):
            with self.watchers_lock:
                watcher = self.watchers.get(event.task_id)
            if watcher is None or watcher.container_name != event.name:
                return
            if event.action == "oom":
                watcher.ran_out_of_memory()
            else:
                watcher.container_died(event.exit_code)
            return
        if event.action != "start":
            return
        with self.watchers_lock:
            if event.task_id in self.watchers:
                return
        # The event says all that RUNNING needs: no call to the engine on the way.
        container = ContainerInfo(id=event.container_id, name=event.name, status="running")
        attempt = transitions.mark_running(
            self.uow(), task_id=event.task_id, container=container, started_at=event.at
        )
        if attempt is not None:
            # Its first watcher: nothing of this attempt's output can be stored yet.
            self.watch(attempt, fresh=True)
        # Otherwise it is not the task's current attempt: its start job or the reconciler
        # removes the container.

    # -- watchers ----------------------------------------------------------------------------

    def watch(self, attempt: transitions.RunningAttempt, *, fresh: bool = False) -> Watcher:
        """The attempt's watcher, started now unless one runs already.

        `fresh`: the attempt has just started, so no output of it is stored yet.
        """
        with self.watchers_lock:
            watcher = self.watchers.get(attempt.task_id)
            if watcher is None:
                watcher = self.watchers[attempt.task_id] = Watcher(
                    attempt,
                    engine=self.engine(),
                    uow=self.uow,
                    settings=self.execution,
                    flush_seconds=self.settings.LOG_FLUSH_SECONDS,
                    sample_seconds=self.settings.USAGE_SAMPLE_SECONDS,
                    on_done=self._watcher_done,
                    fresh=fresh,
                )
                watcher.start()
            return watcher

    def _watcher_done(self, watcher: Watcher) -> None:
        with self.watchers_lock:
            if self.watchers.get(watcher.task_id) is watcher:
                del self.watchers[watcher.task_id]
        if self.inputs.holds(watcher.task_id):
            self.remove_inputs_of_ended({watcher.task_id})

    def remove_inputs_of_ended(self, task_ids: set[uuid.UUID]) -> None:
        """Remove the input directories of those tasks that have ended or are gone."""
        states = transitions.attempt_states(self.uow(), task_ids=task_ids)
        for task_id in task_ids:
            state = states.get(task_id)
            if state is None or is_finished(state.status):
                self.inputs.remove(task_id)

    def watch_running(self) -> None:
        """Start a watcher for each RUNNING task without one; pass cancel requests on."""
        for attempt in transitions.running_attempts(self.uow()):
            watcher = self.watch(attempt)
            if attempt.cancel_requested and not watcher.cancel_requested:
                watcher.request_cancel()

    # -- reconciler --------------------------------------------------------------------------

    def reconcile(self) -> None:
        """Send stuck notification deliveries again; match labelled containers to tasks;
        re-dispatch QUEUED tasks whose job vanished."""
        # First: it needs no Docker engine, and an engine away must not strand deliveries.
        for delivery_id in stuck_deliveries(
            self.uow(), older_than=self.settings.NOTIFY_SWEEP_AFTER_SECONDS
        ):
            log.warning("notification delivery %s was stuck pending; sending again", delivery_id)
            dispatch.send_delivery(delivery_id)
        engine = self.engine()
        containers = engine.task_containers()
        stale = datetime.now(UTC) - timedelta(seconds=self.settings.REDISPATCH_AFTER_SECONDS)
        tasks = transitions.attempt_states(
            self.uow(), task_ids={c.task_id for c in containers if c.task_id}
        )
        waiting = transitions.waiting_attempts(self.uow())
        for container in containers:
            task = tasks.get(container.task_id)
            if task is not None and task.container_name == container.name:
                if task.status == TaskStatus.RUNNING:
                    continue  # its watcher owns it
                if (
                    task.status == TaskStatus.QUEUED
                    and container.status != "created"
                    and task.touched < stale
                ):
                    # A start job died between starting the container and recording it, and
                    # the start event went unseen (a live job touched the task lately).
                    log.info("adopting container %s of task %s", container.name, task.task_id)
                    if transitions.mark_running(
                        self.uow(),
                        task_id=task.task_id,
                        container=container,
                        started_at=container.started_at(datetime.now(UTC)),
                    ):
                        continue
                elif task.status == TaskStatus.QUEUED:
                    continue  # its start job (or a redelivery) is still at work on it
            log.warning("removing orphaned container %s", container.name)
            engine.remove(container.name)
        # Input directories of tasks that ended while no watcher saw it (a crash, a failed start).
        self.remove_inputs_of_ended(self.inputs.staged_tasks())
        for task in waiting:
            if task.touched >= stale:
                continue
            log.warning(
                "task %s: no start job touched it since %s; dispatching", task.task_id, task.touched
            )
            # PENDING too: a TaskCreated the dispatcher never saw (e.g. published before its
            # queue was bound) must not strand the task.
            if transitions.touch_waiting(self.uow(), task_id=task.task_id):
                dispatch.send_start(str(task.task_id))


def main() -> int:
    """`python -m services.tasks.monitor`: run the monitor until SIGTERM or SIGINT."""
    settings = TasksSettings()
    configure_logging("tasks-monitor", settings.LOG_LEVEL)
    stopper = Stopper()
    stopper.install_signal_handlers()
    Monitor(settings, stopper).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
