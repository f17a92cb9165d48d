"""REST endpoints of the tasks service: thin views over service.py, each for the token's user."""

from __future__ import annotations

import uuid

from flask import Response, current_app, stream_with_context
from flask.views import MethodView
from flask_limiter import Limiter
from flask_smorest import abort

from services.tasks import dependencies, logs, service
from services.tasks.schemas import (
    LogChunkPageSchema,
    TaskCreateSchema,
    TaskListArgsSchema,
    TaskLogChunksArgsSchema,
    TaskLogsArgsSchema,
    TaskLogsSchema,
    TaskPageSchema,
    TaskSchema,
)
from shared.auth import authenticated, caller_id
from shared.web import ServiceBlueprint, revalidate_json_reads

blp = ServiceBlueprint("tasks", __name__, url_prefix="/v1", description="Container tasks")


def _caller_key() -> str:
    return f"user:{caller_id()}"


#: Per-user limits (views below are authenticated first, so the caller is known).
limiter = Limiter(key_func=_caller_key, headers_enabled=True)


def _ctx():
    return current_app.extensions["tasks"]


def _task_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        abort(400, message="Task id is not a valid UUID.", messages={"task_id": ["Not a UUID."]})


def _not_found() -> None:
    abort(404, message="Task not found.")


blp.after_request(revalidate_json_reads)


@blp.route("/tasks")
class Tasks(MethodView):
    """The caller's tasks."""

    decorators = [authenticated]

    @blp.arguments(TaskListArgsSchema, location="query")
    @blp.response(200, TaskPageSchema)
    @blp.alt_response(304, description="Not modified: If-None-Match matched the page's ETag")
    def get(self, args):
        """List your tasks, newest first, a page at a time, optionally of one status."""
        return service.list_tasks(_ctx().uow(), owner_id=caller_id(), **args)

    @limiter.limit(lambda: _ctx().settings.CREATE_LIMIT_PER_USER)
    @blp.arguments(TaskCreateSchema)
    @blp.response(201, TaskSchema)
    @blp.alt_response(409, description="You have as many unfinished tasks as one user may")
    @blp.alt_response(429, description="You created too many tasks lately; see Retry-After")
    def post(self, body):
        """Submit a task; it starts PENDING, with the server's defaults for limits left out."""
        ctx = _ctx()
        try:
            return service.create_task(
                ctx.uow(), policy=ctx.policy, owner_id=caller_id(), spec=service.TaskSpec(**body)
            )
        except service.PolicyViolation as exc:
            abort(400, messages=exc.fields)
        except dependencies.UnknownDependency as exc:
            abort(400, message=str(exc), messages={"depends_on": [str(exc)]})
        except service.ActiveTaskLimitReached as exc:
            abort(
                409,
                message=f"You already have {exc.limit} unfinished tasks, as many as one user may; "
                "wait for some to finish or cancel some.",
            )


@blp.route("/tasks/<task_id>")
class TaskById(MethodView):
    """One of the caller's tasks."""

    decorators = [authenticated]

    @blp.response(200, TaskSchema)
    @blp.alt_response(304, description="Not modified: If-None-Match matched the task's ETag")
    @blp.alt_response(404, description="No such task, or not yours")
    def get(self, task_id):
        """Read a task."""
        try:
            return service.get_task(_ctx().uow(), owner_id=caller_id(), task_id=_task_id(task_id))
        except service.TaskNotFound:
            _not_found()

    @blp.response(204)
    @blp.alt_response(404, description="No such task, or not yours")
    @blp.alt_response(409, description="The task has not finished, or tasks still wait on it")
    def delete(self, task_id):
        """Delete a finished task and its logs."""
        try:
            service.delete_task(_ctx().uow(), owner_id=caller_id(), task_id=_task_id(task_id))
        except service.TaskNotFound:
            _not_found()
        except service.TaskNotFinished as exc:
            abort(409, message=f"Only a finished task can be deleted; this one is {exc.status}.")
        except dependencies.TaskHasDependants as exc:
            abort(409, message=str(exc))


@blp.route("/tasks/<task_id>/cancel")
class TaskCancel(MethodView):
    """Stopping a task."""

    decorators = [authenticated]

    @blp.response(200, TaskSchema)
    @blp.alt_response(404, description="No such task, or not yours")
    def post(self, task_id):
        """Cancel a task: at once if not started, soon if running; a finished one is unchanged."""
        try:
            return service.cancel_task(
                _ctx().uow(), owner_id=caller_id(), task_id=_task_id(task_id)
            )
        except service.TaskNotFound:
            _not_found()


@blp.route("/tasks/<task_id>/logs")
class TaskLogs(MethodView):
    """A task's output."""

    decorators = [authenticated]

    @blp.arguments(TaskLogsArgsSchema, location="query")
    @blp.response(200, TaskLogsSchema)
    @blp.alt_response(304, description="Not modified: If-None-Match matched the logs' ETag")
    @blp.alt_response(404, description="No such task, or not yours")
    @blp.alt_response(503, description="follow: too many log streams are open; retry later")
    # With follow=true the 200 is the output itself, streamed as text/plain.
    @blp.doc(responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}})
    def get(self, args, task_id):
        """Read a task's stored output: stdout, stderr or both interleaved, optionally a tail.

        With `follow=true` the answer is text/plain, streamed: the output so far (or its tail),
        then new output as it is stored, until the task finishes.
        """
        ctx = _ctx()
        owner_id, task_id = caller_id(), _task_id(task_id)
        if not args.pop("follow"):
            try:
                return logs.read_logs(ctx.uow(), owner_id=owner_id, task_id=task_id, **args)
            except service.TaskNotFound:
                _not_found()
        # Each stream holds a request thread for as long as it is open: a few at most, so that
        # followers can never take the whole service away from everything else.
        if not ctx.follow_permits.acquire(blocking=False):
            abort(
                503,
                message="Too many log streams are open; try again later, or read logs/chunks.",
                headers={"Retry-After": "5"},
            )
        try:
            texts = logs.follow_logs(
                ctx.uow,
                owner_id=owner_id,
                task_id=task_id,
                poll_seconds=ctx.settings.LOG_FOLLOW_POLL_SECONDS,
                max_seconds=ctx.settings.LOG_FOLLOW_MAX_SECONDS,
                **args,
            )
        except BaseException as exc:
            ctx.follow_permits.release()
            if isinstance(exc, service.TaskNotFound):
                _not_found()
            raise
        response = Response(
            stream_with_context(texts),
            mimetype="text/plain",
            # Proxies must pass each piece on as it comes, not buffer the whole answer.
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )
        response.call_on_close(ctx.follow_permits.release)
        return response


@blp.route("/tasks/<task_id>/logs/chunks")
class TaskLogChunks(MethodView):
    """A task's output as numbered chunks, for readers that resume where they stopped."""

    decorators = [authenticated]

    @blp.arguments(TaskLogChunksArgsSchema, location="query")
    @blp.response(200, LogChunkPageSchema)
    @blp.alt_response(304, description="Not modified: If-None-Match matched the page's ETag")
    @blp.alt_response(404, description="No such task, or not yours")
    def get(self, args, task_id):
        """Read the chunks stored after chunk `after`; a finished status and no more = complete."""
        try:
            return logs.read_log_chunks(
                _ctx().uow(), owner_id=caller_id(), task_id=_task_id(task_id), **args
            )
        except service.TaskNotFound:
            _not_found()
