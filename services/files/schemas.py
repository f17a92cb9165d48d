"""Request and response schemas of the files API."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, post_load, validate

from shared.pagination import CursorField, RankCursor, page_schema

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


class FileSchema(Schema):
    """A file as the API shows it: upload facts, then processing results (null until then)."""

    id = fields.UUID()
    owner_id = fields.UUID()
    filename = fields.String(metadata={"description": "Sanitized name, used for downloads."})
    original_filename = fields.String(metadata={"description": "The name as uploaded."})
    content_type = fields.String(metadata={"description": "The type the uploader declared."})
    size = fields.Integer()
    sha256 = fields.String()
    status = fields.String(
        metadata={"enum": ["UPLOADED", "PROCESSING", "PROCESSED", "FAILED"]},
    )
    mime_type = fields.String(allow_none=True)
    encoding = fields.String(allow_none=True)
    line_count = fields.Integer(allow_none=True)
    word_count = fields.Integer(allow_none=True)
    error = fields.String(allow_none=True)
    extra = fields.Dict(metadata={"description": "Results of further processors, by name."})
    created_at = fields.DateTime()
    processed_at = fields.DateTime(allow_none=True)
    produced_by_task_id = fields.UUID(
        allow_none=True,
        metadata={"description": "The task whose /output this file was; null for an upload."},
    )
    output_path = fields.String(
        allow_none=True,
        metadata={"description": "The file's path under that task's /output (subdirectories)."},
    )


MAX_SEARCH_LENGTH = 200


class FileQueryArgsSchema(Schema):
    """Paging of the file list: `first` files after the cursor `after`, maybe a search."""

    first = fields.Integer(
        load_default=DEFAULT_PAGE_SIZE, validate=validate.Range(min=1, max=MAX_PAGE_SIZE)
    )
    after = CursorField(load_default=None, ranked=True)
    search = fields.String(
        load_default=None,
        validate=validate.Length(max=MAX_SEARCH_LENGTH),
        metadata={
            "description": "Words in the filename or the text content; the best match comes "
            "first. Empty or blank lists every file, newest first."
        },
    )

    produced_by_task = fields.UUID(
        load_default=None,
        metadata={
            "description": "Only the files this task of the caller's produced (its outputs), "
            "newest first; not combined with a search."
        },
    )

    @post_load
    def blank_search_lists_everything(self, data: dict, **_kwargs) -> dict:
        """A blank search is no search; a cursor must come from the same kind of listing."""
        search = data.get("search")
        data["search"] = search.strip() if search and search.strip() else None
        if data["search"] is not None and data.get("produced_by_task") is not None:
            raise ValidationError("A search lists all the caller's files.", "produced_by_task")
        after = data.get("after")
        if after is not None and isinstance(after, RankCursor) != (data["search"] is not None):
            raise ValidationError(
                "This cursor comes from a listing with a different search.", "after"
            )
        return data


#: One page of the caller's files, newest first.
FilePageSchema = page_schema(FileSchema, "File")
