"""REST endpoints of the files service: thin views over service.py, plus HTTP download rules."""

from __future__ import annotations

import logging
import unicodedata
import uuid
from typing import NoReturn
from urllib.parse import quote

from flask import Response, current_app, request, url_for
from flask.views import MethodView
from flask_smorest import abort
from werkzeug.exceptions import RequestEntityTooLarge

from services.files import service
from services.files.multipart import MAX_OVERHEAD_BYTES, MalformedMultipart, MultipartUpload
from services.files.schemas import FilePageSchema, FileQueryArgsSchema, FileSchema
from services.files.storage import ObjectMissing, StorageUnavailable
from shared.auth import authenticated, authenticated_or_delegated, caller_id
from shared.web import PRIVATE_REVALIDATED, ServiceBlueprint, revalidate_json_reads

log = logging.getLogger(__name__)

blp = ServiceBlueprint(
    "files", __name__, url_prefix="/v1", description="Upload, list, download and delete files"
)

UPLOAD_REQUEST_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {"file": {"type": "string", "format": "binary"}},
            }
        }
    },
}
#: A download's documented answer: the bytes, in the file's own media type.
FILE_BYTES = {"content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}}
FILE_ID_PARAMETER = {
    "in": "path",
    "name": "file_id",
    "required": True,
    "schema": {"type": "string", "format": "uuid"},
}


def _ctx():
    return current_app.extensions["files"]


def _file_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        abort(400, message="File id must be a UUID.", messages={"file_id": ["Not a valid UUID."]})


def _storage_unavailable(exc: StorageUnavailable) -> NoReturn:
    # The reason (a path, an endpoint) is for operators; clients only learn to retry later.
    log.warning("file storage unavailable: %s", exc)
    abort(503, message="File storage is unavailable. Try again later.")


def _owned_file(raw_file_id: str) -> service.FileView:
    ctx = _ctx()
    try:
        return service.get_file(ctx.uow(), owner_id=caller_id(), file_id=_file_id(raw_file_id))
    except service.FileNotFound:
        abort(404, message="File not found.")


def content_disposition(filename: str) -> str:
    """`attachment` with an ASCII fallback name and the exact name RFC 5987-encoded."""
    ascii_name = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode().strip()
    ascii_name = "".join("_" if c in '"\\' or not c.isprintable() else c for c in ascii_name)
    encoded = quote(filename, safe="!#$&+-.^_`|~")
    return f"attachment; filename=\"{ascii_name or 'file'}\"; filename*=UTF-8''{encoded}"


#: Content a user uploaded never runs as this origin's page: an HTML or SVG file opened in a
#: browser anyway (a plugin, a "view" link) gets no scripts, forms, plugins or same-origin rights.
DOWNLOAD_CSP = "default-src 'none'; sandbox"


def download_headers(filename: str) -> dict[str, str]:
    """What every download carries, whatever its media type: saved, never sniffed or run."""
    return {
        "Content-Disposition": content_disposition(filename),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": DOWNLOAD_CSP,
    }


def _requested_range(file: service.FileView) -> tuple[int, int] | None:
    """(start, end exclusive) of a single satisfiable byte range; None to send everything."""
    byte_range = request.range
    if byte_range is None or byte_range.units != "bytes" or len(byte_range.ranges) != 1:
        # Absent, malformed or multiple ranges: RFC 9110 lets a server answer with the whole.
        return None
    if_range = request.headers.get("If-Range")
    if if_range is not None:
        parsed = request.if_range
        current = parsed.etag == file.sha256 and not if_range.strip().startswith("W/")
        if parsed.date is not None:
            current = parsed.date >= file.created_at.replace(microsecond=0)
        if not current:
            return None
    start, end = byte_range.ranges[0]
    if end is None:
        start, end = (max(file.size + start, 0), file.size) if start < 0 else (start, file.size)
    end = min(end, file.size)
    if start >= end:
        abort(
            416,
            message=f"Range not satisfiable; the file has {file.size} bytes.",
            code="RANGE_NOT_SATISFIABLE",
            headers={"Content-Range": f"bytes */{file.size}"},
        )
    return start, end


def _validators(response: Response, file: service.FileView) -> Response:
    # The content never changes under a file id, so its checksum is its validator.
    response.set_etag(file.sha256)
    response.last_modified = file.created_at
    response.headers["Accept-Ranges"] = "bytes"
    response.headers["Cache-Control"] = PRIVATE_REVALIDATED
    return response


blp.after_request(revalidate_json_reads)


@blp.route("/files")
class Files(MethodView):
    """The caller's files."""

    @authenticated
    @blp.arguments(FileQueryArgsSchema, location="query", as_kwargs=True)
    @blp.alt_response(304, description="Not modified (If-None-Match holds the page's ETag)")
    @blp.response(200, FilePageSchema)
    def get(self, first, after, search, produced_by_task):
        """List the caller's files, newest first, or best match first for a `search`, paged."""
        if search is not None:
            return service.search_files(
                _ctx().uow(), owner_id=caller_id(), search=search, first=first, after=after
            )
        return service.list_files(
            _ctx().uow(),
            owner_id=caller_id(),
            first=first,
            after=after,
            produced_by_task=produced_by_task,
        )

    @authenticated
    @blp.doc(requestBody=UPLOAD_REQUEST_BODY)
    @blp.response(201, FileSchema, headers={"Location": {"schema": {"type": "string"}}})
    @blp.alt_response(400, description="Not multipart/form-data with one `file` part")
    @blp.alt_response(413, description="PAYLOAD_TOO_LARGE or QUOTA_EXCEEDED")
    @blp.alt_response(
        503,
        description="Storage unavailable, or processing is behind (Retry-After); nothing stored",
    )
    def post(self):
        """Upload a file (multipart/form-data, field `file`), streamed into storage."""
        ctx = _ctx()
        if ctx.intake.must_slow():
            # Refused before reading the body: back-pressure, not an error to retry at once.
            abort(
                503,
                message="Too many files are waiting for processing. Try again later.",
                headers={"Retry-After": str(ctx.intake.retry_after)},
            )
        limits = service.UploadLimits(
            max_bytes=ctx.settings.MAX_UPLOAD_BYTES, quota_bytes=ctx.settings.USER_QUOTA_BYTES
        )
        # The service-wide limit keeps JSON bodies small; this one body may be a whole file.
        request.max_content_length = limits.max_bytes + MAX_OVERHEAD_BYTES
        try:
            body = MultipartUpload(
                request.stream,
                content_type=request.headers.get("Content-Type"),
                content_length=request.content_length,
            )
            file = service.upload_file(
                ctx.uow(), storage=ctx.storage, owner_id=caller_id(), body=body, limits=limits
            )
        except MalformedMultipart as exc:
            abort(400, message=str(exc), messages={"file": [str(exc)]})
        except (service.UploadTooLarge, RequestEntityTooLarge):
            abort(413, message=str(service.UploadTooLarge(limits.max_bytes)))
        except service.QuotaExceeded as exc:
            abort(413, message=str(exc), code="QUOTA_EXCEEDED")
        except StorageUnavailable as exc:
            _storage_unavailable(exc)
        return file, {"Location": url_for("files.FileById", file_id=str(file.id))}


@blp.route("/files/<file_id>", parameters=[FILE_ID_PARAMETER])
class FileById(MethodView):
    """One of the caller's files."""

    @authenticated
    @blp.alt_response(304, description="Not modified (If-None-Match holds the file's ETag)")
    @blp.alt_response(404, description="No such file (or not the caller's)")
    @blp.response(200, FileSchema)
    def get(self, file_id):
        """A file's details and processing results."""
        return _owned_file(file_id)

    @authenticated
    @blp.response(204)
    @blp.alt_response(404, description="No such file (or not the caller's)")
    @blp.alt_response(409, description="FILE_LEASED: the input of a task that has not ended")
    def delete(self, file_id):
        """Delete a file and its stored content (not while it is a running task's input)."""
        ctx = _ctx()
        try:
            service.delete_file(
                ctx.uow(), storage=ctx.storage, owner_id=caller_id(), file_id=_file_id(file_id)
            )
        except service.FileNotFound:
            abort(404, message="File not found.")
        except service.FileLeased as exc:
            abort(409, message=str(exc), code="FILE_LEASED")


@blp.route("/files/<file_id>/content", parameters=[FILE_ID_PARAMETER])
class FileContent(MethodView):
    """A file's bytes."""

    # The gateway serves signed download links (no token) through this view, acting for the
    # link's user with a credential only it can sign.
    @authenticated_or_delegated
    @blp.response(
        200,
        content_type="application/octet-stream",
        description="The content (206 with one byte range, 304 when If-None-Match matches)",
    )
    @blp.alt_response(206, description="Partial content")
    # Answered in the file's own media type (File.media_type), whatever it is.
    @blp.doc(responses={200: FILE_BYTES, 206: FILE_BYTES})
    @blp.alt_response(304, description="Not modified")
    @blp.alt_response(404, description="No such file (or not the caller's)")
    @blp.alt_response(410, description="The file's content is no longer in storage")
    @blp.alt_response(416, description="Range not satisfiable")
    @blp.alt_response(503, description="Storage unavailable")
    def get(self, file_id):
        """Download a file, streamed; supports ETag/If-None-Match and single byte ranges."""
        file = _owned_file(file_id)
        if request.if_none_match.contains_weak(file.sha256):
            return _validators(Response(status=304), file)
        byte_range = _requested_range(file)
        start, end = byte_range or (0, file.size)
        try:
            reader = service.open_file_content(
                storage=_ctx().storage, file=file, start=start, length=end - start
            )
        except StorageUnavailable as exc:
            _storage_unavailable(exc)
        except ObjectMissing:
            # Storage answers but lost the object: an operator's problem, not a retryable one.
            log.error("file %s: its stored object %s is missing", file.id, file.storage_key)
            abort(410, message="The content of this file is no longer stored.")
        response = Response(
            iter(reader),
            status=206 if byte_range else 200,
            # content_type, not mimetype: werkzeug would claim utf-8 for any text/* file.
            content_type=file.media_type,
            direct_passthrough=True,
        )
        response.call_on_close(reader.close)
        response.content_length = end - start
        if byte_range:
            response.headers["Content-Range"] = f"bytes {start}-{end - 1}/{file.size}"
        for name, value in download_headers(file.filename).items():
            response.headers[name] = value
        return _validators(response, file)
