from enum import Enum


class FileStatus(str, Enum):
    UPLOADED = "UPLOADED"
    PROCESSING = "PROCESSING"
    PROCESSED = "PROCESSED"
    FAILED = "FAILED"


class TaskStatus(str, Enum):
    PENDING = "PENDING"
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"
    CANCELLED = "CANCELLED"
    SKIPPED = "SKIPPED"


class TriggerRule(str, Enum):
    ALL_SUCCEEDED = "ALL_SUCCEEDED"
    ALL_DONE = "ALL_DONE"


class WorkflowStatus(str, Enum):
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class MisfirePolicy(str, Enum):
    SKIP = "SKIP"
    RUN_ONCE = "RUN_ONCE"
    RUN_ALL = "RUN_ALL"


class OverlapPolicy(str, Enum):
    ALLOW = "ALLOW"
    SKIP = "SKIP"
    CANCEL_PREVIOUS = "CANCEL_PREVIOUS"


class NotificationEvent(str, Enum):
    TASK_SUCCEEDED = "TASK_SUCCEEDED"
    TASK_FAILED = "TASK_FAILED"
    WORKFLOW_FINISHED = "WORKFLOW_FINISHED"
    FILE_PROCESSED = "FILE_PROCESSED"
    FILE_FAILED = "FILE_FAILED"
    SCHEDULE_MISFIRED = "SCHEDULE_MISFIRED"


class NotificationChannel(str, Enum):
    LOG = "LOG"
    EMAIL = "EMAIL"
    WEBHOOK = "WEBHOOK"
