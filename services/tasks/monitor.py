"""The monitor: owns every running task container until its result is stored.

Run: `python -m services.tasks.monitor`. One watcher thread per RUNNING task streams stdout and
stderr into the task's logs every TASKS_LOG_FLUSH_SECONDS, samples CPU and memory, kills the
container on timeout (counted from its start) or cancel, stores the outcome (retrying when the
task asks), then removes the container. A reconciler, at start and every TASKS_RECONCILE_SECONDS,
removes labelled containers no task owns, adopts containers a crashed start job left behind and
re-dispatches QUEUED tasks no start job touched lately. Everything it does is idempotent, so a
monitor killed at any point is replaced by one that picks up where it stopped.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from docker.errors import DockerException, NotFound
from requests.exceptions import RequestException
from sqlalchemy import select, text

from services.tasks import dispatch, engine
from services.tasks.config import TasksSettings
from services.tasks.models import SCHEMA, LogStream, Task, TaskStatus
from services.tasks.service import append_output
from shared.db import UnitOfWork, make_engine, session_factory
from shared.logging import configure_logging
from shared.messaging.runtime import Backoff, Stopper

log = logging.getLogger(__name__)

#: Only one monitor drives the engine at a time (a second one waits as a standby).
_LEADER_LOCK = 0x6D6F6E69746F72  # "monitor"


def complete_utf8_length(data: bytes | bytearray) -> int:
    """The length of `data` without a UTF-8 character cut short at its end."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 == 0x80:
            continue  # a continuation byte: its lead byte is further back
        needed = 2 if byte >> 5 == 0b110 else 3 if byte >> 4 == 0b1110 else 4
        if byte >= 0xC0 and byte < 0xF8 and back < needed:
            return len(data) - back
        return len(data)
    return len(data)


class Watcher(threading.Thread):
    """Follows one RUNNING task's container from adoption to removal."""

    def __init__(self, monitor: Monitor, task: Task) -> None:
        super().__init__(name=f"watch-{task.id}", daemon=True)
        self.monitor = monitor
        self.task_id = task.id
        self.name_ = task.container_name
        self.deadline = task.started_at + timedelta(seconds=task.timeout_seconds)
        self.started_at = task.started_at
        self.cancel_requested = task.cancel_requested_at is not None
        self.buffers: dict[LogStream, bytearray] = {s: bytearray() for s in LogStream}
        #: Bytes of each stream read from the start of the container's log.
        self.received: dict[LogStream, int] = {s: 0 for s in LogStream}
        #: Bytes of each stream already stored (a watcher taking over): read but not stored.
        self.skip: dict[LogStream, int] = {s: 0 for s in LogStream}
        self.lock = threading.Lock()
        self.killed_for: str | None = None
        self.previous_cpu: tuple[int, int] | None = None

    def run(self) -> None:
        try:
            self._watch()
        except Exception:
            log.exception("watcher of task %s failed; the next pass retries", self.task_id)
        finally:
            self.monitor.watcher_done(self.task_id)

    def _watch(self) -> None:
        client = self.monitor.docker()
        try:
            container = client.containers.get(self.name_)
        except NotFound:
            self._finish(
                engine.Outcome(
                    TaskStatus.FAILED,
                    error_code="CONTAINER_LOST",
                    error="The task's container disappeared from the engine.",
                    engine_side=True,
                ),
                None,
            )
            return
        # Always read the log from its beginning: Docker's `since` is whole seconds and a
        # container's first output can predate its StartedAt, so a time-based resume point
        # loses output. A watcher taking over instead skips the bytes already stored.
        self.skip = engine.stored_log_bytes(
            self.monitor.uow(), task_id=self.task_id, started_at=self.started_at
        )
        if any(self.skip.values()):
            log.info("task %s: resuming its logs after %s stored bytes", self.task_id, self.skip)
        readers = [
            threading.Thread(target=self._read, args=(client, container.id, s), daemon=True)
            for s in LogStream
        ]
        for reader in readers:
            reader.start()
        settings = self.monitor.settings
        next_sample = 0.0
        while True:
            self._flush()
            now = datetime.now(UTC)
            if self.killed_for is None and self.cancel_requested:
                self._kill(container, "cancel")
            elif self.killed_for is None and now >= self.deadline:
                self._kill(container, "timeout")
            if time.monotonic() >= next_sample:
                self._sample(container)
                next_sample = time.monotonic() + settings.USAGE_SAMPLE_SECONDS
            container.reload()
            if container.status in ("exited", "dead"):
                break
            time.sleep(settings.LOG_FLUSH_SECONDS)
        # The readers end once the engine has sent all the output (one frame per line, so a
        # chatty task takes a moment); keep flushing while they drain.
        drain_deadline = time.monotonic() + 120
        for reader in readers:
            while reader.is_alive() and time.monotonic() < drain_deadline:
                reader.join(timeout=settings.LOG_FLUSH_SECONDS)
                self._flush()
        self._catch_up(client, container.id)
        self._flush(final=True)
        outcome = engine.outcome_of(container.attrs["State"], killed_for=self.killed_for)
        self._finish(outcome, container)

    def _read(self, client: Any, container_id: str, stream: LogStream) -> None:
        """Copy one stream of the container's output into its buffer as it arrives."""
        try:
            chunks = client.api.logs(
                container_id,
                stdout=stream == LogStream.STDOUT,
                stderr=stream == LogStream.STDERR,
                stream=True,
                follow=True,
            )
            for chunk in chunks:
                with self.lock:
                    self._take(stream, chunk)
        except (DockerException, RequestException):
            log.warning("lost the %s of task %s", stream, self.task_id, exc_info=True)

    def _catch_up(self, client: Any, container_id: str) -> None:
        """Add the output a follow stream missed once the container exited."""
        # dockerd 20.10 can end a follow stream before a fast writer's last lines are read;
        # a plain read of the finished log is complete, so take what lies past our count.
        for stream in LogStream:
            try:
                data = client.api.logs(
                    container_id,
                    stdout=stream == LogStream.STDOUT,
                    stderr=stream == LogStream.STDERR,
                    stream=False,
                )
            except (DockerException, RequestException):
                log.warning("could not re-read the %s of task %s", stream, self.task_id)
                continue
            with self.lock:
                missed = data[self.received[stream] :]
                if missed:
                    log.info("task %s: %d %s bytes came late", self.task_id, len(missed), stream)
                    self._take(stream, missed)

    def _take(self, stream: LogStream, data: bytes) -> None:
        """Account for the next bytes of a stream; buffer those not stored yet (lock held)."""
        start = self.received[stream]
        self.received[stream] += len(data)
        fresh = data[max(self.skip[stream] - start, 0) :]
        if fresh:
            self.buffers[stream] += fresh

    def _flush(self, *, final: bool = False) -> None:
        """Store what the buffers hold, in one transaction (one event) for both streams."""
        batches = {}
        with self.lock:
            for stream, buffer in self.buffers.items():
                # Until the last flush, a character split across reads waits for its end, so
                # every stored chunk decodes on its own (live readers get whole characters).
                end = len(buffer) if final else complete_utf8_length(buffer)
                if end:
                    batches[stream] = bytes(buffer[:end])
                    del buffer[:end]
        if batches:
            append_output(
                self.monitor.uow(),
                task_id=self.task_id,
                batches=batches,
                max_bytes=self.monitor.settings.LOG_MAX_BYTES,
            )

    def _kill(self, container: Any, reason: str) -> None:
        log.info("task %s: killing its container (%s)", self.task_id, reason)
        self.killed_for = reason
        try:
            container.kill()
        except NotFound:
            pass
        except DockerException as exc:
            # 409: it already stopped; anything else the next pass retries.
            if getattr(exc, "status_code", None) != 409:
                self.killed_for = None
                raise

    def _sample(self, container: Any) -> None:
        try:
            stats = container.stats(stream=False, one_shot=True)
        except (DockerException, RequestException):
            return
        cpu = stats.get("cpu_stats") or {}
        total = (cpu.get("cpu_usage") or {}).get("total_usage")
        system = cpu.get("system_cpu_usage")
        percent = None
        if total is not None and system is not None:
            if self.previous_cpu is not None:
                cpu_delta = total - self.previous_cpu[0]
                system_delta = system - self.previous_cpu[1]
                cores = cpu.get("online_cpus") or 1
                if system_delta > 0:
                    percent = round(100.0 * cpu_delta / system_delta * cores, 2)
            self.previous_cpu = (total, system)
        memory = (stats.get("memory_stats") or {}).get("usage")
        engine.record_usage(
            self.monitor.uow(), task_id=self.task_id, cpu_percent=percent, memory_bytes=memory
        )

    def _finish(self, outcome: engine.Outcome, container: Any) -> None:
        delay = engine.finish_attempt(
            self.monitor.uow(),
            task_id=self.task_id,
            name=self.name_,
            outcome=outcome,
            settings=self.monitor.engine_settings,
            engine_retries=self.monitor.settings.ENGINE_RETRIES,
        )
        if delay is not None:
            dispatch.send_start(str(self.task_id), countdown=delay)
        # Only now that logs and result are stored does the container go.
        if container is not None:
            try:
                container.remove(force=True)
            except NotFound:
                pass


class Monitor:
    """The watcher threads, the loop that starts them and the reconciler."""

    def __init__(self, settings: TasksSettings, stopper: Stopper) -> None:
        self.settings = settings
        self.engine_settings = engine.EngineSettings.from_settings(settings)
        self.stopper = stopper
        self.db = make_engine(
            settings.DATABASE_URL, schema=SCHEMA, pool_size=20, hide_parameters=True
        )
        self.uow = partial(UnitOfWork, session_factory(self.db), schema=SCHEMA, source="tasks")
        self.watchers: dict[uuid.UUID, Watcher] = {}
        self.watchers_lock = threading.Lock()
        self._client = None

    def docker(self) -> Any:
        """The Docker client (docker-py's client is thread-safe; one per process)."""
        if self._client is None:
            self._client = engine.docker_client(self.settings)
        return self._client

    def watcher_done(self, task_id: uuid.UUID) -> None:
        """Forget a watcher that ended."""
        with self.watchers_lock:
            self.watchers.pop(task_id, None)

    def run(self) -> None:
        """Lead, then watch and reconcile until stopped."""
        with self.db.connect() as leader:
            while not leader.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": _LEADER_LOCK}):
                leader.rollback()
                log.info("another monitor leads; standing by")
                if self.stopper.wait(5):
                    return
            leader.commit()
            log.info("monitor leads")
            next_reconcile = 0.0
            # An engine that stays away is retried ever less often (and logged as often).
            backoff = Backoff(initial=self.settings.LOG_FLUSH_SECONDS, maximum=30.0)
            while not self.stopper.is_set():
                pause = self.settings.LOG_FLUSH_SECONDS
                try:
                    if time.monotonic() >= next_reconcile:
                        self.reconcile()
                        next_reconcile = time.monotonic() + self.settings.RECONCILE_SECONDS
                    self.watch_running()
                    backoff.reset()
                except engine.EngineUnavailable as exc:
                    pause = backoff.next()
                    log.warning("%s; retrying in %.1fs", exc, pause)
                    self._client = None
                except Exception:
                    log.exception("monitor pass failed; retrying")
                self.stopper.wait(pause)

    def watch_running(self) -> None:
        """Start a watcher for each RUNNING task without one; pass cancel requests on."""
        with self.uow() as uow:
            running = uow.session.scalars(
                select(Task).where(Task.status == TaskStatus.RUNNING)
            ).all()
            uow.session.expunge_all()
        for task in running:
            with self.watchers_lock:
                watcher = self.watchers.get(task.id)
                if watcher is None:
                    self.docker()  # fail here, not in the thread, when the engine is away
                    watcher = self.watchers[task.id] = Watcher(self, task)
                    watcher.start()
                elif task.cancel_requested_at is not None:
                    watcher.cancel_requested = True

    def reconcile(self) -> None:
        """Match labelled containers to tasks; re-dispatch QUEUED tasks whose job vanished."""
        client = self.docker()
        try:
            containers = client.containers.list(
                all=True,
                filters=engine.namespace_filter(self.engine_settings.namespace),
                ignore_removed=True,
            )
        except (DockerException, RequestException) as exc:
            raise engine.EngineUnavailable("ENGINE_UNREACHABLE", str(exc)) from None
        now = datetime.now(UTC)
        stale = now - timedelta(seconds=self.settings.REDISPATCH_AFTER_SECONDS)
        with self.uow() as uow:
            ids = {uuid.UUID(c.labels[engine.LABEL_TASK]) for c in containers}
            tasks = (
                {t.id: t for t in uow.session.scalars(select(Task).where(Task.id.in_(ids))).all()}
                if ids
                else {}
            )
            queued = uow.session.scalars(
                select(Task).where(Task.status.in_([TaskStatus.PENDING, TaskStatus.QUEUED]))
            ).all()
            uow.session.expunge_all()
        for container in containers:
            task = tasks.get(uuid.UUID(container.labels[engine.LABEL_TASK]))
            if task is not None and task.container_name == container.name:
                if task.status == TaskStatus.RUNNING:
                    continue  # its watcher owns it
                touched = task.heartbeat_at or task.queued_at or task.created_at
                if (
                    task.status == TaskStatus.QUEUED
                    and container.status != "created"
                    and touched < stale
                ):
                    # A start job died between starting the container and recording it (a live
                    # one touched the task lately and is about to record it itself).
                    log.info("adopting container %s of task %s", container.name, task.id)
                    engine.mark_running(
                        self.uow(), task_id=task.id, name=container.name, container=container
                    )
                    continue
                if task.status == TaskStatus.QUEUED:
                    continue  # its start job (or a redelivery) is still at work on it
            log.warning("removing orphaned container %s", container.name)
            try:
                container.remove(force=True)
            except NotFound:
                pass
        for task in queued:
            touched = task.heartbeat_at or task.queued_at or task.created_at
            if touched < stale:
                log.warning(
                    "task %s: no start job touched it since %s; dispatching", task.id, touched
                )
                with self.uow() as uow:
                    row = uow.session.get(Task, task.id, with_for_update=True)
                    # PENDING too: a TaskCreated the dispatcher never saw (e.g. published
                    # before its queue was bound) must not strand the task.
                    if row is not None and row.status in (TaskStatus.PENDING, TaskStatus.QUEUED):
                        row.heartbeat_at = now
                        uow.commit()
                dispatch.send_start(str(task.id))


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
