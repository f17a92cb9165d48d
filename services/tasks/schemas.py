"""Request and response schemas of the tasks API (shape and syntax; limits are service policy)."""

from __future__ import annotations

import re
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from services.tasks.images import InvalidImageReference, parse_image_reference
from services.tasks.models import LogStream, TaskStatus, TriggerRule
from shared.pagination import CursorField, page_schema

MAX_NAME_LENGTH = 200
MAX_COMMAND_ARGS = 256
MAX_COMMAND_CHARS = 32 * 1024
MAX_ENV_VARS = 100
MAX_ENV_NAME_LENGTH = 256
MAX_ENV_VALUE_LENGTH = 16 * 1024
MAX_ENV_CHARS = 32 * 1024
#: Docker refuses memory limits under 6 MiB.
MIN_MEMORY_MB = 6
MIN_CPU = 0.01
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
MAX_TAIL_LINES = 100_000
DEFAULT_CHUNK_PAGE = 100
MAX_CHUNK_PAGE = 1000
#: Tasks one task may depend on.
MAX_DEPENDENCIES = 100
#: Names the engine sets in every container (e.g. DOCKYARD_INPUT_FILE).
RESERVED_ENV_PREFIX = "DOCKYARD_"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class StrictInteger(fields.Integer):
    """A JSON integer: no strings, floats or booleans."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class StrictFloat(fields.Float):
    """A JSON number: no strings or booleans."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


def _valid_image(value: str) -> None:
    try:
        parse_image_reference(value)
    except InvalidImageReference as exc:
        raise ValidationError(str(exc)) from None


def _no_nul(value: str) -> None:
    if "\x00" in value:
        raise ValidationError("Must not contain NUL characters.")


def _valid_command(command: list[str]) -> None:
    if command and not command[0]:
        raise ValidationError("The first element (the program) must not be empty.")
    if sum(len(arg) for arg in command) > MAX_COMMAND_CHARS:
        raise ValidationError(f"Must total at most {MAX_COMMAND_CHARS} characters.")


def _valid_env_name(name: str) -> None:
    if not _ENV_NAME.fullmatch(name):
        raise ValidationError(
            "Must start with a letter or '_' and hold only letters, digits and '_'."
        )
    if name.startswith(RESERVED_ENV_PREFIX):
        raise ValidationError(f"Names starting with {RESERVED_ENV_PREFIX} are reserved.")


def _valid_env(env: list[dict[str, str]]) -> None:
    # Messages never quote a value: env values may be secrets.
    names = [item["name"] for item in env]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValidationError(f"Names must be unique; repeated: {', '.join(duplicates)}.")
    if sum(len(item["name"]) + len(item["value"]) for item in env) > MAX_ENV_CHARS:
        raise ValidationError(f"Names and values must total at most {MAX_ENV_CHARS} characters.")


class EnvVarSchema(Schema):
    """One environment variable of a task's container."""

    name = fields.String(
        required=True,
        validate=[validate.Length(min=1, max=MAX_ENV_NAME_LENGTH), _valid_env_name],
    )
    value = fields.String(
        required=True, validate=[validate.Length(max=MAX_ENV_VALUE_LENGTH), _no_nul]
    )


class TaskCreateSchema(Schema):
    """A task to run; limits left out take the server's defaults."""

    name = fields.String(
        allow_none=True, load_default=None, validate=validate.Length(min=1, max=MAX_NAME_LENGTH)
    )
    image = fields.String(required=True, validate=_valid_image)
    command = fields.List(
        fields.String(validate=_no_nul),
        required=True,
        validate=[validate.Length(min=1, max=MAX_COMMAND_ARGS), _valid_command],
    )
    env = fields.List(
        fields.Nested(EnvVarSchema),
        load_default=list,
        validate=[validate.Length(max=MAX_ENV_VARS), _valid_env],
    )
    timeout_seconds = StrictInteger(allow_none=True, validate=validate.Range(min=1))
    cpu_limit = StrictFloat(allow_none=True, validate=validate.Range(min=MIN_CPU))
    memory_limit_mb = StrictInteger(allow_none=True, validate=validate.Range(min=MIN_MEMORY_MB))
    max_retries = StrictInteger(allow_none=True, validate=validate.Range(min=0))
    network = fields.Boolean(truthy={True}, falsy={False}, load_default=False)
    executor = fields.String(
        allow_none=True,
        load_default=None,
        validate=validate.Length(max=32),
        metadata={
            "description": "Which executor runs the task: `docker` (the default), `swarm` or an "
            "executor plugin's name, if the operator enabled it (TASKS_EXECUTORS)."
        },
    )
    depends_on = fields.List(
        fields.String(validate=validate.Length(max=64)),
        load_default=list,
        validate=validate.Length(max=MAX_DEPENDENCIES),
        metadata={"description": "Ids of your tasks this one waits on (see trigger_rule)."},
    )
    trigger_rule = fields.String(
        load_default=TriggerRule.ALL_SUCCEEDED,
        validate=validate.OneOf([rule.value for rule in TriggerRule]),
        metadata={
            "description": "ALL_SUCCEEDED: run once every dependency succeeded, else end "
            "SKIPPED; ALL_DONE: run once every dependency ended."
        },
    )
    retry_on_exit_codes = fields.List(
        StrictInteger(validate=validate.Range(min=1, max=255)),
        allow_none=True,
        load_default=None,
        validate=validate.Length(min=1, max=256),
        metadata={
            "description": "Retry a failed attempt only on these exit codes (all if absent)."
        },
    )
    input_file_id = fields.UUID(
        allow_none=True,
        load_default=None,
        metadata={
            "description": "One of your PROCESSED files, mounted read-only at /input/<filename> "
            "(its path in DOCKYARD_INPUT_FILE); the task stays PENDING until it is leased to it."
        },
    )


class TaskListArgsSchema(Schema):
    """Query arguments of the task list."""

    first = fields.Integer(
        load_default=DEFAULT_PAGE_SIZE, validate=validate.Range(min=1, max=MAX_PAGE_SIZE)
    )
    after = CursorField()
    status = fields.String(validate=validate.OneOf([s.value for s in TaskStatus]))


class TaskLogsArgsSchema(Schema):
    """Query arguments of a task's logs."""

    tail = fields.Integer(validate=validate.Range(min=1, max=MAX_TAIL_LINES))
    stream = fields.String(
        load_default="both", validate=validate.OneOf([*(s.value for s in LogStream), "both"])
    )
    follow = fields.Boolean(
        load_default=False,
        metadata={
            "description": "Stream the output as text/plain: what is stored, then new output as "
            "it comes, until the task finishes."
        },
    )


class TaskLogChunksArgsSchema(Schema):
    """Query arguments of a read of log chunks."""

    after = fields.Integer(
        validate=validate.Range(min=0),
        metadata={"description": "The `next_after` of the previous read; absent: from the start."},
    )
    stream = fields.String(
        load_default="both", validate=validate.OneOf([*(s.value for s in LogStream), "both"])
    )
    limit = fields.Integer(
        load_default=DEFAULT_CHUNK_PAGE, validate=validate.Range(min=1, max=MAX_CHUNK_PAGE)
    )


class EnvNameSchema(Schema):
    """An environment variable as shown back: its name only (values are write-only)."""

    name = fields.String()


class UsageSchema(Schema):
    """The latest resource sample of a running task."""

    cpu_percent = fields.Float(allow_none=True)
    memory_bytes = fields.Integer(allow_none=True)
    sampled_at = fields.DateTime()


class TaskSchema(Schema):
    """A task as its owner sees it."""

    id = fields.String()
    name = fields.String(allow_none=True)
    image = fields.String()
    command = fields.List(fields.String())
    env = fields.List(fields.Nested(EnvNameSchema))
    timeout_seconds = fields.Integer()
    cpu_limit = fields.Float()
    memory_limit_mb = fields.Integer()
    max_retries = fields.Integer()
    network = fields.Boolean()
    status = fields.String(validate=validate.OneOf([s.value for s in TaskStatus]))
    exit_code = fields.Integer(allow_none=True)
    error_code = fields.String(allow_none=True)
    error = fields.String(allow_none=True)
    attempts = fields.Integer()
    created_at = fields.DateTime()
    queued_at = fields.DateTime(allow_none=True)
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)
    cancel_requested_at = fields.DateTime(allow_none=True)
    usage = fields.Nested(UsageSchema, allow_none=True)
    input_file_id = fields.String(allow_none=True)
    schedule_id = fields.String(
        allow_none=True, metadata={"description": "The schedule that started the task, if any."}
    )
    executor = fields.String(metadata={"description": "The executor that runs the task."})
    outputs_note = fields.String(
        allow_none=True,
        metadata={
            "description": "What under /output was not stored (over the limits, links, fifos), "
            "or why no outputs were stored."
        },
    )
    depends_on = fields.List(fields.String(), metadata={"description": "Ids of its dependencies."})
    trigger_rule = fields.String()
    retry_on_exit_codes = fields.List(fields.Integer(), allow_none=True)
    workflow_id = fields.String(allow_none=True)
    workflow_step = fields.String(allow_none=True)


#: One page of the caller's tasks, newest first.
TaskPageSchema = page_schema(TaskSchema, "Task")


class TaskLogsSchema(Schema):
    """A task's stored output."""

    task_id = fields.String()
    status = fields.String()
    stream = fields.String()
    text = fields.String()
    truncated = fields.Boolean()
    last_chunk_id = fields.Integer(
        allow_none=True,
        metadata={"description": "The newest chunk in `text`: read on with logs/chunks?after=."},
    )


class LogChunkSchema(Schema):
    """One stored batch of one stream's output."""

    id = fields.Integer()
    stream = fields.String()
    text = fields.String()
    at = fields.DateTime()
    offset = fields.Integer(
        metadata={"description": "Where the chunk starts in its stream (dropped bytes count)."}
    )
    size = fields.Integer(metadata={"description": "Bytes in the chunk."})


class LogChunkPageSchema(Schema):
    """Chunks stored after the one asked for, oldest first, and the task's status then."""

    task_id = fields.String()
    status = fields.String()
    chunks = fields.List(fields.Nested(LogChunkSchema))
    next_after = fields.Integer()
    has_more = fields.Boolean()
    dropped = fields.Dict(keys=fields.String(), values=fields.Integer())
