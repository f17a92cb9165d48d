"""Request and response schemas of the files API."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from shared.pagination import CursorField, page_schema

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


class FileQueryArgsSchema(Schema):
    """Paging of the file list: `first` files after the cursor `after`."""

    first = fields.Integer(
        load_default=DEFAULT_PAGE_SIZE, validate=validate.Range(min=1, max=MAX_PAGE_SIZE)
    )
    after = CursorField(load_default=None)


#: One page of the caller's files, newest first.
FilePageSchema = page_schema(FileSchema, "File")
