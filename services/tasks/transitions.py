"""Every database step of a task's execution: claim, running, finished, usage, and what to watch.

The start job (launcher.py) and the monitor call these; each is one short transaction under the
task's row lock and idempotent, so a crash anywhere leaves a state the next start job or the
reconciler can finish. lifecycle.py says which moves are legal; this module makes them (the
claim's and the start's in plain UPDATEs, the moves every task makes). A move that frees a slot
on the engine also sends SLOT_FREED_CHANNEL, which waiting start jobs LISTEN on; the claim gives
a free slot to the fairest waiting task (round robin between owners), whichever job claims it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import DateTime, Integer, String, Uuid, bindparam, func, select, text

from services.tasks import logs, outputs, step_inputs
from services.tasks.containers import ContainerInfo, ContainerSpec
from services.tasks.events import TaskStarted
from services.tasks.lifecycle import container_name, is_finished, transition
from services.tasks.models import LogStream, Task, TaskLogChunk, TaskStatus
from services.tasks.output_saga import collect_outputs
from shared.db import UnitOfWork

#: Serialises capacity checks across start jobs (any constant unique to this purpose).
_CAPACITY_LOCK = 0x7461736B73  # "tasks"
#: The LISTEN/NOTIFY channel told that a running slot may have freed up.
SLOT_FREED_CHANNEL = "dockyard_tasks_slot_freed"


@dataclass(frozen=True)
class ExecutionSettings:
    """What the execution steps need from TasksSettings."""

    concurrency: int
    slot_wait_seconds: float
    log_max_bytes: int
    retry_backoff_seconds: float
    retry_backoff_max_seconds: float
    engine_retries: int
    #: Task outputs (outputs.py): the host root of every attempt's /output, and its limits.
    output_dir: str = "./var/task-outputs"
    output_max_files: int = 100
    output_max_bytes: int = 100 * 1024 * 1024
    container_user: str = ""

    @classmethod
    def from_settings(cls, settings: Any) -> ExecutionSettings:
        """The execution part of TasksSettings."""
        return cls(
            concurrency=settings.WORKER_CONCURRENCY,
            slot_wait_seconds=settings.SLOT_WAIT_SECONDS,
            log_max_bytes=settings.LOG_MAX_BYTES,
            retry_backoff_seconds=settings.RETRY_BACKOFF_SECONDS,
            retry_backoff_max_seconds=settings.RETRY_BACKOFF_MAX_SECONDS,
            engine_retries=settings.ENGINE_RETRIES,
            output_dir=settings.OUTPUT_DIR,
            output_max_files=settings.OUTPUT_MAX_FILES,
            output_max_bytes=settings.OUTPUT_MAX_BYTES,
            container_user=settings.CONTAINER_USER,
        )

    def backoff(self, failures: int) -> float:
        """Seconds to wait before the retry that follows `failures` failed attempts."""
        return min(
            self.retry_backoff_seconds * 2 ** max(failures - 1, 0), self.retry_backoff_max_seconds
        )


def _slot_freed(uow: UnitOfWork) -> None:
    # Delivered at commit, and only if the transaction commits.
    uow.session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": SLOT_FREED_CHANNEL})


# -- start ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """What a start job got: an attempt to start, or why not (`outcome`).

    The attempt may be another task's (`spec.task_id`): a freed slot goes to the fairest
    waiting task, not to whichever start job woke first.
    """

    outcome: str  # "start", "busy", "done"
    spec: ContainerSpec | None = None


#: A claim's look, under the capacity lock: its own task's status, the slots taken, and the
#: waiting task a free slot goes to: the one whose owner holds the fewest slots (round robin
#: between owners), the caller's own among equals (its start job is the one running: no other
#: needs to wake), then the oldest. A retry waiting out its backoff (heartbeat_at ahead) is not
#: waiting yet, nor is a task whose input file is not leased yet (input_files.py: TaskInputReady
#: asks again once it is), nor one awaiting its dependencies (dependencies.py: TaskReleased).
#: Slots are held by RUNNING tasks and by those between claim and RUNNING.
_LOOK = (
    text(
        """
        WITH held AS (
            SELECT owner_id, count(*) AS slots FROM tasks
            WHERE status = 'RUNNING' OR (status = 'QUEUED' AND container_name IS NOT NULL)
            GROUP BY owner_id
        )
        SELECT own.status, own.container_name,
            own.input_file_id IS NOT NULL AND own.input_filename IS NULL AS awaits_input,
            own.awaiting_dependencies AS awaits_dependencies,
            (SELECT coalesce(sum(slots), 0) FROM held) AS busy,
            fairest.id AS fairest, fairest.attempts AS fairest_attempts
        FROM tasks AS own
        LEFT JOIN LATERAL (
            SELECT waiting.id, waiting.attempts FROM tasks AS waiting
            LEFT JOIN held ON held.owner_id = waiting.owner_id
            WHERE waiting.status IN ('PENDING', 'QUEUED') AND waiting.container_name IS NULL
              AND (waiting.input_file_id IS NULL OR waiting.input_filename IS NOT NULL)
              AND NOT waiting.awaiting_dependencies
              AND (waiting.id = own.id OR waiting.heartbeat_at IS NULL
                   OR waiting.heartbeat_at <= :now)
            ORDER BY coalesce(held.slots, 0), waiting.id = own.id DESC, waiting.created_at,
                waiting.id
            LIMIT 1
        ) AS fairest ON true
        WHERE own.id = :own
        """
    )
    .bindparams(bindparam("own", type_=Uuid), bindparam("now", type_=DateTime(timezone=True)))
    .columns(status=String, container_name=String, busy=Integer, fairest=Uuid)
)

#: The claim itself (a waiting task becomes QUEUED with the attempt's container name): one
#: UPDATE whose WHERE re-checks what the look saw, so a cancel since then makes it claim nothing.
_CLAIM = (
    text(
        """
        UPDATE tasks SET
            status = 'QUEUED',
            queued_at = CASE WHEN status = 'PENDING' THEN :now ELSE queued_at END,
            attempts = :attempt, container_name = :name, container_id = NULL,
            heartbeat_at = :now, updated_at = now()
        WHERE id = :id AND attempts = :attempt - 1 AND container_name IS NULL
          AND status IN ('PENDING', 'QUEUED')
          AND (input_file_id IS NULL OR input_filename IS NOT NULL)
          AND NOT awaiting_dependencies
        RETURNING id, owner_id, image, command, env, cpu_limit, memory_limit_mb, network,
            input_file_id, input_filename, executor, workflow_id
        """
    )
    .bindparams(bindparam("id", type_=Uuid), bindparam("now", type_=DateTime(timezone=True)))
    .columns(id=Uuid, owner_id=Uuid, input_file_id=Uuid)
)


def _spec(task: Any, *, attempt: int, name: str) -> ContainerSpec:
    """The container of a Task's attempt (or of a row of _CLAIM)."""
    return ContainerSpec(
        task_id=task.id,
        owner_id=task.owner_id,
        attempt=attempt,
        name=name,
        image=task.image,
        command=list(task.command),
        env={item["name"]: item["value"] for item in task.env},
        cpu_limit=task.cpu_limit,
        memory_limit_mb=task.memory_limit_mb,
        network=task.network,
        input_file_id=task.input_file_id,
        input_filename=task.input_filename,
        executor=task.executor,
    )


def claim_attempt(uow: UnitOfWork, *, task_id: uuid.UUID, settings: ExecutionSettings) -> Claim:
    """Reserve a free slot for the fairest waiting task, or adopt the task's claimed attempt.

    `done`: nothing to start (finished, already running, cancelled); `busy`: every slot taken.
    `start` with the task's own attempt, or with another task's when that one is fairer: the
    task then stays waiting (QUEUED) for a later claim of its start job, which is not settled
    yet. A PENDING task that gets its slot here raises no TaskQueued: it is RUNNING within the
    start's time, which TaskStarted announces (events are triggers, and a message per task for
    that moment would cost the relay and the broker). One that must wait for a slot does.
    """
    now = datetime.now(UTC)
    with uow:
        # Every claim holds the capacity lock: slots are counted and taken by one at a time.
        uow.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CAPACITY_LOCK})
        for _ in range(3):
            look = uow.session.execute(_LOOK, {"own": task_id, "now": now}).one_or_none()
            if look is None or is_finished(look.status) or look.status == TaskStatus.RUNNING:
                return Claim("done")
            if look.awaits_input:
                return Claim("done")  # started from its TaskInputReady, once files leased it
            if look.awaits_dependencies:
                return Claim("done")  # started from its TaskReleased (dependencies.py)
            if look.container_name is not None:
                return _adopt(uow, task_id=task_id, now=now, settings=settings)
            if look.busy >= settings.concurrency or look.fairest is None:
                _wait_queued(uow, task_id, now)
                uow.commit()
                return Claim("busy")
            attempt = look.fairest_attempts + 1
            name = container_name(look.fairest, attempt)
            claimed = uow.session.execute(
                _CLAIM, {"id": look.fairest, "attempt": attempt, "name": name, "now": now}
            ).one_or_none()
            if claimed is None:
                continue  # cancelled since the look (a cancel does not take the capacity lock)
            if look.fairest != task_id:
                _wait_queued(uow, task_id, now)
            spec = _with_step_inputs(
                uow, _spec(claimed, attempt=attempt, name=name), claimed, settings
            )
            uow.commit()
            return Claim("start", spec)
    return Claim("busy")


def _with_step_inputs(
    uow: UnitOfWork, spec: ContainerSpec, task: Any, settings: ExecutionSettings
) -> ContainerSpec:
    """The spec with the kept outputs of a workflow step's dependencies (step_inputs.py)."""
    if task.workflow_id is None:
        return spec
    mounts = step_inputs.mounts_for(uow.session, task.id, output_root=settings.output_dir)
    return replace(spec, step_inputs=mounts)


def _adopt(
    uow: UnitOfWork, *, task_id: uuid.UUID, now: datetime, settings: ExecutionSettings
) -> Claim:
    """The claimed attempt of a task not running yet (its start crashed, say): start it again."""
    task = uow.session.get(Task, task_id, with_for_update=True)
    if task is None or task.status != TaskStatus.QUEUED or task.container_name is None:
        return Claim("done")
    task.heartbeat_at = now
    spec = _with_step_inputs(
        uow, _spec(task, attempt=task.attempts, name=task.container_name), task, settings
    )
    uow.commit()
    return Claim("start", spec)


def _wait_queued(uow: UnitOfWork, task_id: uuid.UUID, now: datetime) -> None:
    """The task waits for a slot: QUEUED (announced when it was PENDING) and seen now."""
    touched = uow.session.execute(_TOUCH_QUEUED, {"id": task_id, "now": now}).rowcount
    if touched:
        return
    task = uow.session.get(Task, task_id, with_for_update=True)
    if task is not None and task.status == TaskStatus.PENDING:
        uow.add_event(transition(task, TaskStatus.QUEUED, now=now))
        task.heartbeat_at = now


#: A QUEUED task waiting for a slot is seen now (the reconciler leaves it to its start job).
_TOUCH_QUEUED = text(
    "UPDATE tasks SET heartbeat_at = :now"
    " WHERE id = :id AND status = 'QUEUED' AND container_name IS NULL"
).bindparams(bindparam("id", type_=Uuid), bindparam("now", type_=DateTime(timezone=True)))


def mark_running(
    uow: UnitOfWork, *, task_id: uuid.UUID, container: ContainerInfo, started_at: datetime
) -> RunningAttempt | None:
    """Record that the attempt's container runs, and return it; None when it is moot.

    When it is moot (the task was cancelled or moved on), the caller removes the container.
    `started_at` is when the engine started it. Idempotent: the start job and the monitor (on
    the engine's start event) both call it.
    """
    name = container.name
    with uow:
        recorded = uow.session.execute(
            _MARK_RUNNING,
            {"id": task_id, "name": name, "container_id": container.id, "at": started_at},
        ).first()
        if recorded is not None and not recorded.fresh:
            return _running(recorded)
        if recorded is not None:
            uow.add_event(
                TaskStarted(
                    task_id=str(task_id),
                    owner_id=str(recorded.owner_id),
                    attempt=recorded.attempts,
                    container_name=name,
                )
            )
            attempt = _running(recorded)
            uow.commit()
            return attempt
        # Neither (cancelled, or the other recorder's commit came while this one waited).
        task = uow.session.get(Task, task_id, with_for_update=True)
        if task is not None and task.status == TaskStatus.RUNNING and task.container_name == name:
            return _running(task)
        if task is None or task.status != TaskStatus.QUEUED or task.container_name != name:
            # Cancelled (or superseded) while the container was being started.
            _slot_freed(uow)
            uow.commit()
            return None
        uow.add_event(transition(task, TaskStatus.RUNNING, now=started_at, container=name))
        task.container_id = container.id
        attempt = _running(task)
        uow.commit()
    return attempt


#: QUEUED -> RUNNING of the attempt (lifecycle.transition's move, in one UPDATE), or, when the
#: other recorder of the start got there first, its answer: `fresh` says which. The launcher and
#: the monitor both record every start, so each pays one statement and no row load. (The SELECT
#: sees the statement's snapshot: the row as it was before this UPDATE.)
_MARK_RUNNING = (
    text(
        """
        WITH started AS (
            UPDATE tasks SET status = 'RUNNING', started_at = :at, heartbeat_at = :at,
                container_id = :container_id, updated_at = now()
            WHERE id = :id AND status = 'QUEUED' AND container_name = :name
            RETURNING id, owner_id, attempts, container_name, started_at, timeout_seconds,
                cancel_requested_at
        )
        SELECT true AS fresh, * FROM started
        UNION ALL
        SELECT false, id, owner_id, attempts, container_name, started_at, timeout_seconds,
            cancel_requested_at
        FROM tasks WHERE id = :id AND status = 'RUNNING' AND container_name = :name
        """
    )
    .bindparams(bindparam("id", type_=Uuid), bindparam("at", type_=DateTime(timezone=True)))
    .columns(id=Uuid, owner_id=Uuid, started_at=DateTime(timezone=True))
)


def fail_start(
    uow: UnitOfWork,
    *,
    task_id: uuid.UUID,
    code: str,
    message: str,
    output_dir: str | None = None,
) -> None:
    """A start that cannot succeed: the QUEUED task fails with `code` (attempt not counted).

    `output_dir` (TASKS_OUTPUT_DIR): the task's output directories go too (nothing ran).
    """
    now = datetime.now(UTC)
    with uow:
        task = uow.session.get(Task, task_id, with_for_update=True)
        if task is None or task.status != TaskStatus.QUEUED:
            return
        if output_dir is not None:
            outputs.remove_task_dir(output_dir, task_id)
        if task.container_name is not None:
            # The claimed attempt never ran, so it does not count.
            task.attempts -= 1
            _slot_freed(uow)
        uow.add_event(transition(task, TaskStatus.FAILED, now=now, error_code=code, error=message))
        uow.commit()


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


CONTAINER_LOST = Outcome(
    TaskStatus.FAILED,
    error_code="CONTAINER_LOST",
    error="The task's container disappeared from the engine.",
    engine_side=True,
)


#: The watcher's `killed_for` of a task over its /output limits: this, then the reason.
OUTPUT_LIMIT_KILL = "output limit: "


def outcome_of(state: dict[str, Any], *, killed_for: str | None) -> Outcome:
    """Read an exited container's State (and why the monitor killed it, if it did)."""
    exit_code = state.get("ExitCode")
    if killed_for == "cancel":
        return Outcome(TaskStatus.CANCELLED, exit_code)
    if killed_for == "timeout":
        return Outcome(TaskStatus.TIMED_OUT, exit_code)
    if killed_for and killed_for.startswith(OUTPUT_LIMIT_KILL):
        return Outcome(
            TaskStatus.FAILED,
            exit_code,
            "OUTPUT_LIMIT_EXCEEDED",
            f"The task was killed: {killed_for.removeprefix(OUTPUT_LIMIT_KILL)}.",
        )
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
    settings: ExecutionSettings,
    output: Mapping[LogStream, bytes] | None = None,
) -> float | None:
    """Record an attempt's end, with its last `output`; returns the retry delay if it is retried.

    User failures retry while attempts <= maxRetries; engine-side failures up to engine_retries.
    The output and the end are one transaction: a reader that sees the end has all the output.
    That transaction raises one event, the end's: readers of the output wake on any event of
    the task, so a TaskOutputAppended beside it would only cost the relay and the broker.
    """
    now = datetime.now(UTC)
    with uow:
        task = uow.session.get(Task, task_id, with_for_update=True)
        if task is None:
            return None
        current = task.status == TaskStatus.RUNNING and task.container_name == name
        if output:
            logs.store_output(
                uow, task, batches=output, max_bytes=settings.log_max_bytes, announce=not current
            )
        if not current:
            uow.commit()
            return None
        # The slot's signal goes just before each commit below (it is delivered at commit
        # anyway): a statement here would flush the log counters in an UPDATE of their own,
        # ahead of the status's.
        if task.cancel_requested_at is not None and outcome.status != TaskStatus.SUCCEEDED:
            outcome = Outcome(TaskStatus.CANCELLED, outcome.exit_code)
        retries_left = (
            task.attempts <= settings.engine_retries
            if outcome.engine_side
            else task.attempts <= task.max_retries and retries_exit_code(task, outcome.exit_code)
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
            attempt = task.attempts
            _slot_freed(uow)
            uow.commit()
            # Only the last attempt's outputs are stored: a failed one's go now.
            outputs.remove_attempt_dir(settings.output_dir, task_id, attempt)
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
        step_inputs.keep_for_dependants(
            uow.session,
            task,
            output_root=settings.output_dir,
            max_files=settings.output_max_files,
            max_bytes=settings.output_max_bytes,
        )
        collect_outputs(uow.session, task, settings=settings)
        _slot_freed(uow)
        uow.commit()
    return None


def retries_exit_code(task: Task, exit_code: int | None) -> bool:
    """Whether a failed attempt exiting `exit_code` is retried (retryOnExitCodes; all if unset)."""
    if task.retry_on_exit_codes is None:
        return True
    return exit_code is not None and exit_code in task.retry_on_exit_codes


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


# -- what the monitor watches -----------------------------------------------------------------


@dataclass(frozen=True)
class RunningAttempt:
    """What a watcher needs of a RUNNING task."""

    task_id: uuid.UUID
    container_name: str
    started_at: datetime
    deadline: datetime
    cancel_requested: bool
    #: The attempt's number (its /output directory's name); 0 when unknown.
    attempt: int = 0


#: The columns a RunningAttempt is made of: what the monitor's frequent reads select.
_ATTEMPT_COLUMNS = select(
    Task.id,
    Task.container_name,
    Task.started_at,
    Task.timeout_seconds,
    Task.cancel_requested_at,
    Task.attempts,
)


def _running(task: Any) -> RunningAttempt:
    """The attempt of a Task, or of a row of _ATTEMPT_COLUMNS."""
    return RunningAttempt(
        task_id=task.id,
        container_name=task.container_name,
        started_at=task.started_at,
        deadline=task.started_at + timedelta(seconds=task.timeout_seconds),
        cancel_requested=task.cancel_requested_at is not None,
        attempt=getattr(task, "attempts", 0) or 0,
    )


def running_attempts(uow: UnitOfWork) -> list[RunningAttempt]:
    """Every RUNNING task."""
    with uow:
        rows = uow.session.execute(_ATTEMPT_COLUMNS.where(Task.status == TaskStatus.RUNNING))
        return [_running(row) for row in rows]


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


@dataclass(frozen=True)
class AttemptState:
    """What the reconciler needs of a task: its status, attempt and when it was last touched."""

    task_id: uuid.UUID
    status: TaskStatus
    container_name: str | None
    touched: datetime


def _state(task: Task) -> AttemptState:
    return AttemptState(
        task_id=task.id,
        status=TaskStatus(task.status),
        container_name=task.container_name,
        touched=task.heartbeat_at or task.queued_at or task.created_at,
    )


def attempt_states(uow: UnitOfWork, *, task_ids: set[uuid.UUID]) -> dict[uuid.UUID, AttemptState]:
    """The tasks with these ids (those that exist), by id."""
    if not task_ids:
        return {}
    with uow:
        tasks = uow.session.scalars(select(Task).where(Task.id.in_(task_ids))).all()
        return {task.id: _state(task) for task in tasks}


def waiting_attempts(uow: UnitOfWork) -> list[AttemptState]:
    """Every PENDING or QUEUED task free to start (its input leased, its dependencies settled)."""
    with uow:
        tasks = uow.session.scalars(
            select(Task).where(
                Task.status.in_([TaskStatus.PENDING, TaskStatus.QUEUED]),
                (Task.input_file_id.is_(None)) | (Task.input_filename.is_not(None)),
                Task.awaiting_dependencies.is_(False),
            )
        ).all()
        return [_state(task) for task in tasks]


def touch_waiting(uow: UnitOfWork, *, task_id: uuid.UUID) -> bool:
    """Mark a PENDING or QUEUED task as handled now (before re-dispatching it); False if not."""
    with uow:
        task = uow.session.get(Task, task_id, with_for_update=True)
        if task is None or task.status not in (TaskStatus.PENDING, TaskStatus.QUEUED):
            return False
        task.heartbeat_at = datetime.now(UTC)
        uow.commit()
    return True
