"""The kinds of event users are told about, and how each is read from the event announcing it."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from shared.events import Envelope


class NotificationEvent(enum.StrEnum):
    """What a notification is about (GraphQL's NotificationEvent)."""

    TASK_SUCCEEDED = "TASK_SUCCEEDED"
    TASK_FAILED = "TASK_FAILED"
    WORKFLOW_FINISHED = "WORKFLOW_FINISHED"
    FILE_PROCESSED = "FILE_PROCESSED"
    FILE_FAILED = "FILE_FAILED"
    SCHEDULE_MISFIRED = "SCHEDULE_MISFIRED"


class Channel(enum.StrEnum):
    """How a notification reaches its user (GraphQL's NotificationChannel)."""

    LOG = "LOG"
    EMAIL = "EMAIL"
    WEBHOOK = "WEBHOOK"


#: The channels of an event kind the user set no rule for.
DEFAULT_CHANNELS = (Channel.LOG,)


@dataclass(frozen=True)
class Occurrence:
    """One event a user should hear about, read from its envelope."""

    event: NotificationEvent
    owner_id: str
    subject: str
    subject_id: str
    #: subject_type, subject_name and status: what the LOG channel says.
    details: dict


#: Routing keys that notify, and the kind each one is.
ROUTING_KEYS = {
    "tasks.TaskSucceeded": NotificationEvent.TASK_SUCCEEDED,
    "tasks.TaskFailed": NotificationEvent.TASK_FAILED,
    "tasks.TaskTimedOut": NotificationEvent.TASK_FAILED,
    "files.FileProcessed": NotificationEvent.FILE_PROCESSED,
    "files.FileProcessingFailed": NotificationEvent.FILE_FAILED,
    "tasks.ScheduleMisfired": NotificationEvent.SCHEDULE_MISFIRED,
    "tasks.WorkflowFinished": NotificationEvent.WORKFLOW_FINISHED,
}

_TASK_STATUS = {"TaskSucceeded": "SUCCEEDED", "TaskFailed": "FAILED", "TaskTimedOut": "TIMED_OUT"}
_TASK_WORDS = {"SUCCEEDED": "succeeded", "FAILED": "failed", "TIMED_OUT": "timed out"}


def occurrence_of(envelope: Envelope) -> Occurrence:
    """What the envelope (one of ROUTING_KEYS) tells its owner."""
    event = ROUTING_KEYS[envelope.routing_key]
    payload = envelope.payload
    owner_id = payload["owner_id"]
    if envelope.source == "tasks" and envelope.type in _TASK_STATUS:
        status = _TASK_STATUS[envelope.type]
        label = payload.get("name") or payload["task_id"]
        return Occurrence(
            event,
            owner_id,
            f"Task {label} {_TASK_WORDS[status]}",
            payload["task_id"],
            {"subject_type": "task", "subject_name": label, "status": status},
        )
    if envelope.source == "files":
        status = payload["status"]
        verb = "was processed" if event is NotificationEvent.FILE_PROCESSED else "failed"
        return Occurrence(
            event,
            owner_id,
            f"File {payload['filename']} {verb}",
            payload["file_id"],
            {"subject_type": "file", "subject_name": payload["filename"], "status": status},
        )
    if envelope.type == "WorkflowFinished":
        status = payload["status"]
        label = payload.get("name") or payload["workflow_id"]
        failed = f" at step {payload['failed_step']}" if payload.get("failed_step") else ""
        return Occurrence(
            event,
            owner_id,
            f"Workflow {label} {status.lower()}{failed}",
            payload["workflow_id"],
            {"subject_type": "workflow", "subject_name": label, "status": status},
        )
    missed = payload["missed"]
    return Occurrence(
        event,
        owner_id,
        f"Schedule {payload['schedule_id']} missed {missed} fire time{'s' if missed != 1 else ''}",
        payload["schedule_id"],
        {"subject_type": "schedule", "subject_name": payload["schedule_id"], "status": "MISFIRED"},
    )
