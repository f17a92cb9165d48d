"""Files' internal REST endpoints, for the tasks service only (its own credential, always).

The tasks service's start jobs fetch a task's input file here (input leases, leases.py): only
while the file is leased to that task, so a credential alone reads no user's file at will.
The gateway's credential is refused (403): no client request needs these endpoints.
"""

from __future__ import annotations

import logging

from flask import Response, current_app
from flask.views import MethodView
from flask_smorest import abort
from marshmallow import Schema, fields

from services.files import service
from services.files.api import FILE_ID_PARAMETER, _file_id, _storage_unavailable
from services.files.storage import ObjectMissing, StorageUnavailable
from shared.service_identity import service_credential_required
from shared.web import ServiceBlueprint

log = logging.getLogger(__name__)

blp = ServiceBlueprint(
    "files-internal",
    __name__,
    url_prefix="/internal/v1",
    description="For the tasks service only: its service credential is always required",
)


class LeasedContentArgsSchema(Schema):
    """Query arguments of a leased file's content."""

    task = fields.UUID(required=True, metadata={"description": "The task the file is leased to."})


def _ctx():
    return current_app.extensions["files"]


@blp.route("/files/<file_id>/content", parameters=[FILE_ID_PARAMETER])
class LeasedFileContent(MethodView):
    """A file's bytes, for the task it is leased to."""

    decorators = [service_credential_required(callers={"tasks"})]

    @blp.arguments(LeasedContentArgsSchema, location="query", as_kwargs=True)
    @blp.response(200, content_type="application/octet-stream", description="The content")
    @blp.alt_response(401, description="No valid service credential")
    @blp.alt_response(403, description="SERVICE_CALLER_NOT_ALLOWED: not the tasks service's")
    @blp.alt_response(404, description="No such file")
    @blp.alt_response(409, description="NOT_LEASED: the file is not leased to that task now")
    @blp.alt_response(410, description="The file's content is no longer in storage")
    @blp.alt_response(503, description="Storage unavailable")
    def get(self, file_id, task):
        """Stream a file leased to a task, for that task's start (tasks' input staging)."""
        ctx = _ctx()
        try:
            view = service.leased_input_file(ctx.uow(), file_id=_file_id(file_id), task_id=task)
        except service.FileNotFound:
            abort(404, message="File not found.")
        except service.FileNotLeased:
            abort(409, message=f"The file is not leased to task {task}.", code="NOT_LEASED")
        try:
            reader = service.open_file_content(storage=ctx.storage, file=view)
        except StorageUnavailable as exc:
            _storage_unavailable(exc)
        except ObjectMissing:
            log.error("file %s: its stored object %s is missing", view.id, view.storage_key)
            abort(410, message="The content of this file is no longer stored.")
        response = Response(
            iter(reader), content_type="application/octet-stream", direct_passthrough=True
        )
        response.call_on_close(reader.close)
        response.content_length = view.size
        return response
