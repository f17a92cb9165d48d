"""Internal REST endpoint of the tasks service: a finished task's /output files, for files.

Files pulls each output named in tasks.TaskOutputsReady from here (the task_outputs saga,
output_saga.py). Only the files service's own credential is served (the gateway's is refused:
no client request needs it): this view has no user.
The tasks REST service reads TASKS_OUTPUT_DIR, the directory the monitor's containers wrote:
both must see the same path (docker-compose.yml gives them the same volume).
"""

from __future__ import annotations

import os
import uuid

from flask import Response, current_app
from flask.views import MethodView
from flask_smorest import abort

from services.tasks import outputs
from services.tasks.lifecycle import is_finished
from services.tasks.models import Task
from shared.service_identity import service_credential_required
from shared.web import ServiceBlueprint

blp = ServiceBlueprint(
    "task-outputs",
    __name__,
    url_prefix="/internal/v1",
    description="A finished task's output files, for the files service only",
)

#: Bytes sent at a time.
_PIECE_BYTES = 64 * 1024


def _ctx():
    return current_app.extensions["tasks"]


def _stream(fd: int, size: int):
    """The file's first `size` bytes (what the scan saw), then the descriptor is closed."""
    try:
        left = size
        while left > 0:
            piece = os.read(fd, min(_PIECE_BYTES, left))
            if not piece:
                break
            left -= len(piece)
            yield piece
    finally:
        os.close(fd)


@blp.route(
    "/tasks/<task_id>/outputs/<path:path>",
    parameters=[
        {"in": "path", "name": "task_id", "required": True, "schema": {"type": "string"}},
        {"in": "path", "name": "path", "required": True, "schema": {"type": "string"}},
    ],
)
class TaskOutput(MethodView):
    """One output file of a finished task's last attempt."""

    decorators = [service_credential_required(callers={"files"})]

    @blp.response(200, content_type="application/octet-stream", description="The file's bytes")
    @blp.alt_response(400, description="Not a task id")
    @blp.alt_response(401, description="No valid service credential")
    @blp.alt_response(403, description="SERVICE_CALLER_NOT_ALLOWED: not the files service's")
    @blp.alt_response(404, description="No such task, not finished, or no such regular file")
    def get(self, task_id, path):
        """Stream one of a finished task's /output files (links are never followed)."""
        try:
            key = uuid.UUID(task_id)
        except ValueError:
            abort(
                400, message="Task id is not a valid UUID.", messages={"task_id": ["Not a UUID."]}
            )
        ctx = _ctx()
        with ctx.uow() as uow:
            task = uow.session.get(Task, key)
            attempt = task.attempts if task is not None and is_finished(task.status) else None
        if attempt is None:
            abort(404, message="No finished task has this id.")
        directory = outputs.attempt_dir(ctx.settings.OUTPUT_DIR, key, attempt)
        try:
            fd, size = outputs.open_output(directory, path)
        except outputs.OutputPathInvalid as exc:
            abort(404, message=f"No such output: {exc}")
        response = Response(
            _stream(fd, size), content_type="application/octet-stream", direct_passthrough=True
        )
        response.content_length = size
        return response
