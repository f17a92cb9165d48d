"""Removing everything the tasks service holds of a user, for auth's account-deletion saga."""

from __future__ import annotations

import uuid

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from services.tasks import outputs, schedules, service, step_inputs, workflows
from services.tasks.events import TaskDeleted, UserTasksDeleted
from services.tasks.lifecycle import is_finished
from services.tasks.models import SCHEMA, Task
from services.tasks.notifications.history import delete_user_notifications
from services.tasks.notifications.rules import delete_user_rules
from shared.db import UnitOfWork, add_events, session_factory


def _output_root() -> str:
    from services.tasks.output_saga import output_settings

    return output_settings().OUTPUT_DIR


class TasksStillRunning(Exception):
    """Some of the user's tasks were asked to stop and have not ended yet: try again later."""


def cancel_user_tasks(session: Session, *, user_id: str) -> int:
    """Cancel every unfinished task of the user through the cancel use case; how many there were.

    Each cancel commits on its own (a connection beside the caller's transaction): the monitor
    must see the request and kill the container while the caller waits to delete the rows.
    Cancelling twice is a no-op, so a redelivered request is harmless.
    """
    owner_id = uuid.UUID(user_id)
    unfinished = [
        task_id
        for task_id, status in session.execute(
            select(Task.id, Task.status).where(Task.owner_id == owner_id)
        )
        if not is_finished(status)
    ]
    # The consumer's session is bound to its transaction's connection: cancels need their own.
    bind = session.get_bind()
    sessions = session_factory(getattr(bind, "engine", bind))
    for task_id in unfinished:
        uow = UnitOfWork(sessions, schema=SCHEMA, source=SCHEMA)
        try:
            service.cancel_task(uow, owner_id=owner_id, task_id=task_id)
        except service.TaskNotFound:
            pass
    return len(unfinished)


def delete_user_schedules(session: Session, *, user_id: str) -> int:
    """Delete the user's schedules, committed at once, so that none starts a task meanwhile.

    Its own connection, as for the cancels: the caller's transaction may be retried (the tasks
    still stopping) and would take the deletion back with it. A scheduler firing one of them
    holds its row until the fire commits; the delete waits for it, and the cancels that follow
    then see the task it started.
    """
    bind = session.get_bind()
    uow = UnitOfWork(session_factory(getattr(bind, "engine", bind)), schema=SCHEMA, source=SCHEMA)
    return schedules.delete_user_schedules(uow, owner_id=uuid.UUID(user_id))


def erase_user_tasks(session: Session, *, user_id: str, saga_id: str) -> int:
    """Delete the user's schedules, cancel their tasks, and once all have ended delete them
    with their notifications, webhooks and notification rules.

    Raises TasksStillRunning while a container is still being stopped: the consumer retries the
    request (with backoff), and the saga's timeout asks again if even that runs out.
    """
    owner_id = uuid.UUID(user_id)
    delete_user_schedules(session, user_id=user_id)
    if cancel_user_tasks(session, user_id=user_id):
        session.expire_all()
    rows = session.execute(
        select(Task.id, Task.status).where(Task.owner_id == owner_id).with_for_update()
    ).all()
    running = [str(task_id) for task_id, status in rows if not is_finished(status)]
    if running:
        raise TasksStillRunning(f"tasks still stopping: {', '.join(running)}")
    # Log chunks go with their task (ON DELETE CASCADE); their /output directories here.
    output_root = _output_root()
    for task_id, _ in rows:
        outputs.remove_task_dir(output_root, task_id)
    step_inputs.remove(output_root, [task_id for task_id, _ in rows])
    session.execute(delete(Task).where(Task.owner_id == owner_id))
    delete_user_notifications(session, owner_id=owner_id)
    delete_user_rules(session, owner_id=owner_id)
    workflows.delete_user_workflows(session, owner_id=owner_id)
    events = [TaskDeleted(task_id=str(task_id), owner_id=user_id) for task_id, _ in rows]
    events.append(UserTasksDeleted(user_id=user_id, saga_id=saga_id, tasks_deleted=len(rows)))
    add_events(session, events, source=SCHEMA, schema=SCHEMA)
    return len(rows)
