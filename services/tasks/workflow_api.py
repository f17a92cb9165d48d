"""REST endpoints of workflows: thin views over workflows.py, each for the token's user."""

from __future__ import annotations

import uuid

from flask import current_app
from flask.views import MethodView
from flask_smorest import abort

from services.tasks import dependencies, service, workflows
from services.tasks.workflow_schemas import (
    WorkflowCreateSchema,
    WorkflowListArgsSchema,
    WorkflowPageSchema,
    WorkflowSchema,
)
from shared.auth import authenticated, caller_id
from shared.web import ServiceBlueprint, revalidate_json_reads

blp = ServiceBlueprint("workflows", __name__, url_prefix="/v1", description="DAGs of tasks")
blp.after_request(revalidate_json_reads)


def _ctx():
    return current_app.extensions["tasks"]


def _workflow_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        abort(404, message="Workflow not found.")


@blp.route("/workflows")
class Workflows(MethodView):
    """The caller's workflows."""

    decorators = [authenticated]

    @blp.arguments(WorkflowListArgsSchema, location="query")
    @blp.response(200, WorkflowPageSchema)
    def get(self, args):
        """List your workflows, newest first, a page at a time."""
        return workflows.list_workflows(_ctx().uow(), owner_id=caller_id(), **args)

    @blp.arguments(WorkflowCreateSchema)
    @blp.response(201, WorkflowSchema)
    @blp.alt_response(409, description="You have as many unfinished tasks as one user may")
    def post(self, body):
        """Create a workflow: every step validated, then all created in one transaction."""
        ctx = _ctx()
        try:
            return workflows.create_workflow(
                ctx.uow(),
                policy=ctx.policy,
                owner_id=caller_id(),
                max_steps=ctx.settings.WORKFLOW_MAX_STEPS,
                **body,
            )
        except workflows.InvalidWorkflow as exc:
            abort(400, message=str(exc), messages={exc.field: [str(exc)]})
        except service.PolicyViolation as exc:
            abort(400, messages=exc.fields)
        except dependencies.UnknownDependency as exc:  # never: steps name no ids
            abort(400, message=str(exc))
        except service.ActiveTaskLimitReached as exc:
            abort(409, message=f"At most {exc.limit} unfinished tasks per user.")


@blp.route("/workflows/<workflow_id>")
class WorkflowById(MethodView):
    """One of the caller's workflows."""

    decorators = [authenticated]

    @blp.response(200, WorkflowSchema)
    @blp.alt_response(404, description="No such workflow, or not yours")
    def get(self, workflow_id):
        """Read a workflow and its steps."""
        try:
            return workflows.get_workflow(
                _ctx().uow(), owner_id=caller_id(), workflow_id=_workflow_id(workflow_id)
            )
        except workflows.WorkflowNotFound:
            abort(404, message="Workflow not found.")


@blp.route("/workflows/<workflow_id>/cancel")
class WorkflowCancel(MethodView):
    """Stopping a workflow."""

    decorators = [authenticated]

    @blp.response(200, WorkflowSchema)
    @blp.alt_response(404, description="No such workflow, or not yours")
    def post(self, workflow_id):
        """Cancel every pending and running step; a finished workflow is returned unchanged."""
        try:
            return workflows.cancel_workflow(
                _ctx().uow(), owner_id=caller_id(), workflow_id=_workflow_id(workflow_id)
            )
        except workflows.WorkflowNotFound:
            abort(404, message="Workflow not found.")
