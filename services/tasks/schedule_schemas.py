"""Request and response schemas of the schedules API (shape and syntax; limits are policy)."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from services.tasks.models import MisfirePolicy, OverlapPolicy
from services.tasks.schemas import (
    DEFAULT_PAGE_SIZE,
    MAX_NAME_LENGTH,
    MAX_PAGE_SIZE,
    EnvNameSchema,
    StrictInteger,
    TaskCreateSchema,
)
from services.tasks.workflow_schemas import WorkflowCreateSchema
from shared.pagination import CursorField, page_schema

MAX_CRON_LENGTH = 200
MAX_TIMEZONE_LENGTH = 64
DEFAULT_NEXT_RUNS = 5
MAX_NEXT_RUNS = 100
#: Ten years: beyond, fire times would leave what a datetime can hold.
MAX_INTERVAL_SECONDS = 10 * 365 * 24 * 3600


class ScheduleCreateSchema(Schema):
    """A task to start on a cron expression or every `interval_seconds`: exactly one of them."""

    name = fields.String(
        allow_none=True, load_default=None, validate=validate.Length(min=1, max=MAX_NAME_LENGTH)
    )
    cron = fields.String(
        allow_none=True,
        load_default=None,
        validate=validate.Length(min=1, max=MAX_CRON_LENGTH),
        metadata={"description": "Five fields: minute hour day-of-month month day-of-week."},
    )
    interval_seconds = StrictInteger(
        allow_none=True,
        load_default=None,
        validate=validate.Range(min=1, max=MAX_INTERVAL_SECONDS),
    )
    timezone = fields.String(
        load_default="UTC",
        validate=validate.Length(min=1, max=MAX_TIMEZONE_LENGTH),
        metadata={"description": "IANA name the cron expression is read in (e.g. Europe/Berlin)."},
    )
    task = fields.Nested(TaskCreateSchema, allow_none=True, load_default=None)
    workflow = fields.Nested(
        WorkflowCreateSchema,
        allow_none=True,
        load_default=None,
        metadata={"description": "A workflow to create at each fire time instead of a task."},
    )
    misfire_policy = fields.String(
        load_default=MisfirePolicy.SKIP.value,
        validate=validate.OneOf([p.value for p in MisfirePolicy]),
    )
    overlap_policy = fields.String(
        load_default=OverlapPolicy.ALLOW.value,
        validate=validate.OneOf([p.value for p in OverlapPolicy]),
    )

    @validates_schema
    def one_unit(self, data, **_kwargs):
        """Exactly one of task and workflow."""
        if (data.get("task") is None) == (data.get("workflow") is None):
            raise ValidationError("Give exactly one of task and workflow.", "task")

    @validates_schema
    def one_recurrence(self, data, **_kwargs):
        """Exactly one of cron and interval_seconds."""
        if (data.get("cron") is None) == (data.get("interval_seconds") is None):
            raise ValidationError("Give exactly one of cron and interval_seconds.", "cron")


class ScheduleListArgsSchema(Schema):
    """Query arguments of the schedule list (and of a schedule's runs)."""

    first = fields.Integer(
        load_default=DEFAULT_PAGE_SIZE, validate=validate.Range(min=1, max=MAX_PAGE_SIZE)
    )
    after = CursorField()


class NextRunsArgsSchema(Schema):
    """Query arguments of a schedule's upcoming fire times."""

    count = fields.Integer(
        load_default=DEFAULT_NEXT_RUNS, validate=validate.Range(min=1, max=MAX_NEXT_RUNS)
    )


class ScheduledTaskSchema(Schema):
    """The task each run is created from, as its owner sees it (env names, never values)."""

    name = fields.String(allow_none=True)
    image = fields.String()
    command = fields.List(fields.String())
    env = fields.List(fields.Nested(EnvNameSchema))
    timeout_seconds = fields.Integer(allow_none=True)
    cpu_limit = fields.Float(allow_none=True)
    memory_limit_mb = fields.Integer(allow_none=True)
    max_retries = fields.Integer(allow_none=True)
    network = fields.Boolean()
    input_file_id = fields.String(allow_none=True)


class ScheduleSchema(Schema):
    """A schedule as its owner sees it."""

    id = fields.String()
    name = fields.String(allow_none=True)
    cron = fields.String(allow_none=True)
    interval_seconds = fields.Integer(allow_none=True)
    timezone = fields.String()
    paused = fields.Boolean()
    misfire_policy = fields.String()
    overlap_policy = fields.String()
    next_run_at = fields.DateTime(
        allow_none=True,
        metadata={"description": "The next fire time, with the timezone's offset; null if paused."},
    )
    last_fire_at = fields.DateTime(allow_none=True)
    task = fields.Nested(ScheduledTaskSchema, allow_none=True)
    created_at = fields.DateTime()


#: One page of the caller's schedules, newest first.
SchedulePageSchema = page_schema(ScheduleSchema, "Schedule")


class NextRunsSchema(Schema):
    """A schedule's upcoming fire times, in its timezone."""

    next_runs = fields.List(fields.DateTime())
