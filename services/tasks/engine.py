"""The execution engine's use cases: start an attempt's container, record its outcome, reconcile.

No Celery here: worker.py (start jobs) and monitor.py (the process that owns running
containers) call these. A start is split in three so that a crash anywhere leaves a state the
next start job or the reconciler can finish: claim the attempt (its deterministic container name
is written first), create-or-adopt and start the container, then mark the task RUNNING.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import docker
import requests
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from sqlalchemy import func, select, text

from services.tasks.lifecycle import container_name, is_finished, transition
from services.tasks.models import LogStream, Task, TaskLogChunk, TaskStatus
from shared.db import UnitOfWork

log = logging.getLogger(__name__)

LABEL_TASK = "dockyard.task-id"
LABEL_OWNER = "dockyard.owner-id"
LABEL_ATTEMPT = "dockyard.attempt"
#: The deployment (DOCKYARD_NAMESPACE) that owns the container: a reconciler touches only its own,
#: so two deployments, or `make up` and `make test`, can share one engine.
LABEL_NAMESPACE = "dockyard.namespace"
#: Serialises capacity checks across start jobs (any constant unique to this purpose).
_CAPACITY_LOCK = 0x7461736B73  # "tasks"


class EngineUnavailable(Exception):
    """The Docker engine could not be reached or failed on its side; worth retrying."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class TaskRejected(Exception):
    """The engine refused the task for a reason retrying will not fix (e.g. no such image)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class EngineSettings:
    """What the engine functions need from TasksSettings."""

    concurrency: int
    slot_wait_seconds: float
    pids_limit: int
    tmpfs_size_mb: int
    container_user: str
    log_max_bytes: int
    retry_backoff_seconds: float
    retry_backoff_max_seconds: float
    namespace: str = "dockyard"

    @classmethod
    def from_settings(cls, settings: Any) -> EngineSettings:
        """The engine part of TasksSettings."""
        return cls(
            concurrency=settings.WORKER_CONCURRENCY,
            slot_wait_seconds=settings.SLOT_WAIT_SECONDS,
            pids_limit=settings.DEFAULT_PIDS_LIMIT,
            tmpfs_size_mb=settings.TMPFS_SIZE_MB,
            container_user=settings.CONTAINER_USER,
            log_max_bytes=settings.LOG_MAX_BYTES,
            retry_backoff_seconds=settings.RETRY_BACKOFF_SECONDS,
            retry_backoff_max_seconds=settings.RETRY_BACKOFF_MAX_SECONDS,
            namespace=settings.NAMESPACE,
        )

    def backoff(self, failures: int) -> float:
        """Seconds to wait before the retry that follows `failures` failed attempts."""
        return min(
            self.retry_backoff_seconds * 2 ** max(failures - 1, 0), self.retry_backoff_max_seconds
        )


def namespace_filter(namespace: str) -> dict[str, list[str]]:
    """The `containers.list` filter matching the task containers of one deployment."""
    return {"label": [LABEL_TASK, f"{LABEL_NAMESPACE}={namespace}"]}


def docker_client(settings: Any) -> docker.DockerClient:
    """A Docker client for DOCKER_HOST (API version negotiated); raises EngineUnavailable."""
    try:
        return docker.DockerClient(
            base_url=settings.DOCKER_HOST or None,
            version="auto",
            timeout=settings.DOCKER_TIMEOUT_SECONDS,
        )
    except DockerException as exc:
        where = settings.DOCKER_HOST or "the default socket (DOCKER_HOST unset)"
        raise EngineUnavailable(
            "ENGINE_UNREACHABLE", f"Docker engine unreachable at {where}: {exc}"
        ) from None


def _engine_message(exc: BaseException) -> str:
    return f"Docker engine unreachable: {exc}"


def _is_connection_error(exc: BaseException) -> bool:
    return isinstance(exc, requests.exceptions.ConnectionError | requests.exceptions.Timeout) or (
        isinstance(exc, DockerException) and not isinstance(exc, APIError)
    )


def _classify(exc: BaseException) -> Exception:
    """Turn a Docker SDK error into EngineUnavailable or TaskRejected."""
    if _is_connection_error(exc):
        return EngineUnavailable("ENGINE_UNREACHABLE", _engine_message(exc))
    if isinstance(exc, APIError) and exc.is_server_error():
        return EngineUnavailable("ENGINE_ERROR", f"Docker engine error: {exc.explanation or exc}")
    return TaskRejected("START_FAILED", f"The engine refused to start the task: {exc}")


# -- container spec ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AttemptSpec:
    """A snapshot of what one attempt's container needs (read under the task's row lock)."""

    task_id: uuid.UUID
    owner_id: uuid.UUID
    attempt: int
    name: str
    image: str
    command: list[str]
    env: dict[str, str]
    cpu_limit: float
    memory_limit_mb: int
    network: bool


def container_options(spec: AttemptSpec, settings: EngineSettings) -> dict[str, Any]:
    """Keyword arguments of `containers.create`: safe by default, labelled, limited."""
    memory = spec.memory_limit_mb * 1024 * 1024
    options: dict[str, Any] = {
        "image": spec.image,
        "command": spec.command,
        "name": spec.name,
        "environment": spec.env,
        "labels": {
            LABEL_TASK: str(spec.task_id),
            LABEL_OWNER: str(spec.owner_id),
            LABEL_ATTEMPT: str(spec.attempt),
            LABEL_NAMESPACE: settings.namespace,
        },
        # Network only when the task asked; the API refused it unless the operator allows it.
        "network_mode": "bridge" if spec.network else "none",
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "read_only": True,
        "tmpfs": {"/tmp": f"rw,noexec,nosuid,mode=1777,size={settings.tmpfs_size_mb}m"},
        "pids_limit": settings.pids_limit,
        "mem_limit": memory,
        # Equal to mem_limit: no swap, so a task over its memory is OOM-killed, not slowed.
        "memswap_limit": memory,
        "nano_cpus": int(spec.cpu_limit * 1e9),
        "detach": True,
        # The monitor reads logs through the API; json-file keeps them until removal.
        "log_config": {"Type": "json-file", "Config": {}},
    }
    if settings.container_user:
        options["user"] = settings.container_user
    return options


def ensure_image(client: docker.DockerClient, image: str) -> None:
    """Use the local image when present, else pull it; raises TaskRejected or EngineUnavailable."""
    try:
        client.images.get(image)
        return
    except ImageNotFound:
        pass
    except (DockerException, requests.exceptions.RequestException) as exc:
        raise _classify(exc) from None
    try:
        client.images.pull(image)
    except (DockerException, requests.exceptions.RequestException) as exc:
        if _is_connection_error(exc):
            raise _classify(exc) from None
        # A failed pull (no such repository, no network, denied) is the image's problem.
        detail = exc.explanation if isinstance(exc, APIError) else str(exc)
        raise TaskRejected(
            "IMAGE_NOT_FOUND",
            f"Image {image!r} is not present on the engine and pulling it failed: {detail}",
        ) from None


def create_or_adopt(client: docker.DockerClient, spec: AttemptSpec, settings: EngineSettings):
    """The attempt's container, created now or found from an earlier try, and started."""
    try:
        try:
            container = client.containers.create(**container_options(spec, settings))
        except APIError as exc:
            if exc.status_code != 409:
                raise
            # The name is per attempt: a conflict is this attempt's own container from a job
            # that crashed after creating it, so adopt it rather than make another.
            container = client.containers.get(spec.name)
        if container.status == "created":
            try:
                container.start()
            except APIError as exc:
                if exc.is_client_error():
                    # E.g. no such executable: the attempt never ran, so leave nothing behind.
                    _discard(container)
                raise
        container.reload()
        return container
    except NotFound:
        # Removed under us (a reconciler or a duplicate job finishing it): not the task's fault.
        # Retrying re-reads the task, which is by then running, finished, or free to start anew.
        raise EngineUnavailable(
            "CONTAINER_LOST", f"Container {spec.name} vanished while being started"
        ) from None
    except (DockerException, requests.exceptions.RequestException) as exc:
        raise _classify(exc) from None


def _started_at(container: Any, default: datetime) -> datetime:
    raw = container.attrs.get("State", {}).get("StartedAt") or ""
    try:
        # Docker gives nanoseconds; Python parses microseconds.
        head, _, rest = raw.partition(".")
        fraction = "".join(c for c in rest if c.isdigit())[:6]
        parsed = datetime.fromisoformat(f"{head}.{fraction or '0'}+00:00")
    except ValueError:
        return default
    return parsed if parsed.year > 1 else default


# -- start ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """What a start job got: an attempt to start, or why not (`outcome`)."""

    outcome: str  # "start", "busy", "done"
    spec: AttemptSpec | None = None


def claim_attempt(uow: UnitOfWork, *, task_id: uuid.UUID, settings: EngineSettings) -> Claim:
    """Reserve a slot and the attempt's container name for a QUEUED task.

    `done`: nothing to start (finished, already running, cancelled); `busy`: every slot taken.
    """
    now = datetime.now(UTC)
    with uow:
        task = uow.session.get(Task, task_id, with_for_update=True)
        if task is None or is_finished(task.status) or task.status == TaskStatus.RUNNING:
            return Claim("done")
        if task.status == TaskStatus.PENDING:
            uow.add_event(transition(task, TaskStatus.QUEUED, now=now))
        if task.container_name is None:
            uow.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CAPACITY_LOCK})
            # Running tasks plus those between claim and RUNNING hold a slot.
            busy = uow.session.scalar(
                select(func.count())
                .select_from(Task)
                .where(
                    (Task.status == TaskStatus.RUNNING)
                    | ((Task.status == TaskStatus.QUEUED) & Task.container_name.is_not(None))
                )
            )
            task.heartbeat_at = now
            if busy >= settings.concurrency:
                uow.commit()
                return Claim("busy")
            task.attempts += 1
            task.container_name = container_name(task.id, task.attempts)
        task.heartbeat_at = now
        spec = AttemptSpec(
            task_id=task.id,
            owner_id=task.owner_id,
            attempt=task.attempts,
            name=task.container_name,
            image=task.image,
            command=list(task.command),
            env={item["name"]: item["value"] for item in task.env},
            cpu_limit=task.cpu_limit,
            memory_limit_mb=task.memory_limit_mb,
            network=task.network,
        )
        uow.commit()
    return Claim("start", spec)


def mark_running(uow: UnitOfWork, *, task_id: uuid.UUID, name: str, container: Any) -> bool:
    """Record that the attempt's container runs; False (and the container goes) if it is moot."""
    now = datetime.now(UTC)
    with uow:
        task = uow.session.get(Task, task_id, with_for_update=True)
        if task is not None and task.status == TaskStatus.RUNNING and task.container_name == name:
            return True
        if task is None or task.status != TaskStatus.QUEUED or task.container_name != name:
            # Cancelled (or superseded) while the container was being started.
            _discard(container)
            return False
        uow.add_event(
            transition(task, TaskStatus.RUNNING, now=_started_at(container, now), container=name)
        )
        task.container_id = container.id
        uow.commit()
    return True


def fail_start(uow: UnitOfWork, *, task_id: uuid.UUID, code: str, message: str) -> None:
    """A start that cannot succeed: the QUEUED task fails with `code` (attempt not counted)."""
    now = datetime.now(UTC)
    with uow:
        task = uow.session.get(Task, task_id, with_for_update=True)
        if task is None or task.status != TaskStatus.QUEUED:
            return
        if task.container_name is not None:
            # The claimed attempt never ran, so it does not count.
            task.attempts -= 1
        uow.add_event(transition(task, TaskStatus.FAILED, now=now, error_code=code, error=message))
        uow.commit()


def start_task(
    uow: UnitOfWork,
    *,
    task_id: uuid.UUID,
    client: Callable[[], docker.DockerClient],
    settings: EngineSettings,
) -> str:
    """Start the task's current attempt; idempotent. Returns started, busy, done or failed.

    Raises EngineUnavailable for the caller to retry with backoff.
    """
    claim = claim_attempt(uow, task_id=task_id, settings=settings)
    if claim.outcome != "start":
        return claim.outcome
    spec = claim.spec
    engine = client()
    try:
        ensure_image(engine, spec.image)
        container = create_or_adopt(engine, spec, settings)
    except TaskRejected as exc:
        fail_start(uow, task_id=task_id, code=exc.code, message=str(exc))
        return "failed"
    return (
        "started"
        if mark_running(uow, task_id=task_id, name=spec.name, container=container)
        else "done"
    )


def _discard(container: Any) -> None:
    try:
        container.remove(force=True)
    except NotFound:
        pass


# -- outcome ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended, as the monitor saw it."""

    status: TaskStatus
    exit_code: int | None = None
    error_code: str | None = None
    error: str | None = None
    #: A failure the engine caused (container lost): retried like engine errors.
    engine_side: bool = False


def outcome_of(state: dict[str, Any], *, killed_for: str | None) -> Outcome:
    """Read an exited container's State (and why the monitor killed it, if it did)."""
    exit_code = state.get("ExitCode")
    if killed_for == "cancel":
        return Outcome(TaskStatus.CANCELLED, exit_code)
    if killed_for == "timeout":
        return Outcome(TaskStatus.TIMED_OUT, exit_code)
    if state.get("OOMKilled"):
        return Outcome(
            TaskStatus.FAILED,
            exit_code,
            "OOM_KILLED",
            "The container ran out of memory and was killed (raise memoryLimitMb).",
        )
    if exit_code == 0:
        return Outcome(TaskStatus.SUCCEEDED, 0)
    message = f"The command exited with code {exit_code}."
    if state.get("Error"):
        message += f" Engine: {state['Error']}"
    return Outcome(TaskStatus.FAILED, exit_code, "NON_ZERO_EXIT", message)


def finish_attempt(
    uow: UnitOfWork,
    *,
    task_id: uuid.UUID,
    name: str,
    outcome: Outcome,
    settings: EngineSettings,
    engine_retries: int,
) -> float | None:
    """Record an attempt's end; returns the retry delay if the task goes back to QUEUED.

    User failures retry while attempts <= maxRetries; engine-side failures up to engine_retries.
    """
    now = datetime.now(UTC)
    with uow:
        task = uow.session.get(Task, task_id, with_for_update=True)
        if task is None or task.status != TaskStatus.RUNNING or task.container_name != name:
            return None
        if task.cancel_requested_at is not None and outcome.status != TaskStatus.SUCCEEDED:
            outcome = Outcome(TaskStatus.CANCELLED, outcome.exit_code)
        retries_left = (
            task.attempts <= engine_retries
            if outcome.engine_side
            else task.attempts <= task.max_retries
        )
        if outcome.status == TaskStatus.FAILED and retries_left:
            delay = settings.backoff(task.attempts)
            uow.add_event(transition(task, TaskStatus.QUEUED, now=now))
            task.exit_code, task.error_code, task.error = (
                outcome.exit_code,
                outcome.error_code,
                outcome.error,
            )
            # heartbeat_at in the future: the reconciler leaves the task alone while it waits.
            task.heartbeat_at = now + timedelta(seconds=delay)
            uow.commit()
            return delay
        uow.add_event(
            transition(
                task,
                outcome.status,
                now=now,
                exit_code=outcome.exit_code,
                error_code=outcome.error_code,
                error=outcome.error,
            )
        )
        uow.commit()
    return None


def stored_log_bytes(
    uow: UnitOfWork, *, task_id: uuid.UUID, started_at: datetime
) -> dict[LogStream, int]:
    """Bytes of each stream already stored for the attempt that started at `started_at`.

    A watcher taking over a running attempt (e.g. after a monitor restart) skips that many
    bytes of the container's log. Chunks of earlier attempts were all stored before this
    attempt's container started. Output the size cap dropped is not counted, so a resumed
    attempt that overflowed may repeat some bytes rather than lose any.
    """
    with uow:
        rows = uow.session.execute(
            select(
                TaskLogChunk.stream,
                func.coalesce(func.sum(func.octet_length(TaskLogChunk.data)), 0),
            )
            .where(TaskLogChunk.task_id == task_id, TaskLogChunk.created_at >= started_at)
            .group_by(TaskLogChunk.stream)
        ).all()
    stored = {stream: 0 for stream in LogStream}
    for stream, size in rows:
        stored[LogStream(stream)] = int(size)
    return stored


def record_usage(
    uow: UnitOfWork, *, task_id: uuid.UUID, cpu_percent: float | None, memory_bytes: int | None
) -> None:
    """Store the latest resource sample of a running task and prove its watcher alive."""
    now = datetime.now(UTC)
    with uow:
        task = uow.session.get(Task, task_id, with_for_update=True)
        if task is None or task.status != TaskStatus.RUNNING:
            return
        task.cpu_percent, task.memory_bytes, task.usage_sampled_at = (
            cpu_percent,
            memory_bytes,
            now,
        )
        task.heartbeat_at = now
        uow.commit()
