"""Request and response schemas of the files API."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate

from shared.pagination import InvalidCursor, KeysetCursor

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


class CursorField(fields.String):
    """An opaque page cursor: a KeysetCursor inside, a string outside."""

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else value.encode()

    def _deserialize(self, value, attr, data, **kwargs):
        token = super()._deserialize(value, attr, data, **kwargs)
        try:
            return KeysetCursor.decode(token)
        except InvalidCursor:
            raise ValidationError("Not a cursor this API returned.") from None


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


class PageInfoSchema(Schema):
    """Where a page ends and whether another follows."""

    has_next_page = fields.Boolean()
    end_cursor = CursorField(allow_none=True)


class FileEdgeSchema(Schema):
    """A file and the cursor that resumes the list after it."""

    cursor = CursorField()
    node = fields.Nested(FileSchema)


class FilePageSchema(Schema):
    """One page of the caller's files, newest first."""

    edges = fields.List(fields.Nested(FileEdgeSchema))
    total_count = fields.Integer()
    page_info = fields.Nested(PageInfoSchema)
