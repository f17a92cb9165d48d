"""Request and response schemas of the workflows API."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from services.tasks.schemas import (
    DEFAULT_PAGE_SIZE,
    MAX_NAME_LENGTH,
    MAX_PAGE_SIZE,
    TaskCreateSchema,
    TaskSchema,
)
from shared.pagination import CursorField, page_schema

MAX_STEP_NAME_LENGTH = 100
#: A step's name is a directory's in its dependants (/input/<step name>/): no "/", "." or "..".
_STEP_NAME = validate.Regexp(
    r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
    error="Letters, digits, '.', '_' and '-', starting with a letter or digit.",
)


class WorkflowStepCreateSchema(Schema):
    """One named step: a task, and the names of the steps it depends on."""

    name = fields.String(
        required=True, validate=[validate.Length(min=1, max=MAX_STEP_NAME_LENGTH), _STEP_NAME]
    )
    task = fields.Nested(TaskCreateSchema, required=True)
    depends_on = fields.List(
        fields.String(validate=validate.Length(min=1, max=MAX_STEP_NAME_LENGTH)),
        load_default=list,
        metadata={"description": "Names of the steps this one waits on."},
    )


class WorkflowCreateSchema(Schema):
    """A whole DAG of steps, validated before anything is created."""

    name = fields.String(
        allow_none=True, load_default=None, validate=validate.Length(min=1, max=MAX_NAME_LENGTH)
    )
    steps = fields.List(fields.Nested(WorkflowStepCreateSchema), required=True)


class WorkflowListArgsSchema(Schema):
    """Query arguments of the workflow list."""

    first = fields.Integer(
        load_default=DEFAULT_PAGE_SIZE, validate=validate.Range(min=1, max=MAX_PAGE_SIZE)
    )
    after = CursorField()


class WorkflowStepSchema(Schema):
    """A step as its owner sees it."""

    name = fields.String()
    depends_on = fields.List(fields.String())
    task = fields.Nested(TaskSchema)


class WorkflowSchema(Schema):
    """A workflow as its owner sees it; its status is derived from its steps."""

    id = fields.String()
    name = fields.String(allow_none=True)
    status = fields.String()
    failed_step = fields.String(allow_none=True)
    created_at = fields.DateTime()
    finished_at = fields.DateTime(allow_none=True)
    steps = fields.List(fields.Nested(WorkflowStepSchema))


#: One page of the caller's workflows, newest first.
WorkflowPageSchema = page_schema(WorkflowSchema, "Workflow")
