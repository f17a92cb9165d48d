"""Keyset pagination, newest first: opaque cursors over (created_at, id) and the page query.

A cursor names the last row a client saw; the next page is the rows strictly before it in
(created_at DESC, id DESC) order. Rows inserted meanwhile land before the first page, so paging
on never repeats or skips one, and ties in created_at are broken by the id.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, tuple_

#: Longest cursor string accepted (a real one is about 100 characters).
MAX_CURSOR_LENGTH = 200


class InvalidCursor(ValueError):
    """The string is not a cursor this service issued."""


@dataclass(frozen=True)
class KeysetCursor:
    """A position in a newest-first list: the (created_at, id) of the last row seen."""

    created_at: datetime
    id: uuid.UUID

    @classmethod
    def of(cls, row: Any) -> KeysetCursor:
        """The cursor that resumes the list after `row` (anything with created_at and id)."""
        return cls(row.created_at, uuid.UUID(str(row.id)))

    def encode(self) -> str:
        """The opaque string clients pass back as `after`."""
        raw = json.dumps([self.created_at.isoformat(), str(self.id)], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> KeysetCursor:
        """Parse a string from encode(); raises InvalidCursor."""
        if len(token) > MAX_CURSOR_LENGTH:
            raise InvalidCursor(token[:MAX_CURSOR_LENGTH])
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            created_at, row_id = json.loads(raw)
            if not isinstance(created_at, str) or not isinstance(row_id, str):
                raise ValueError("not a pair of strings")
            cursor = cls(datetime.fromisoformat(created_at), uuid.UUID(row_id))
        except (binascii.Error, UnicodeDecodeError, TypeError, ValueError):
            raise InvalidCursor(token) from None
        if cursor.created_at.tzinfo is None:
            raise InvalidCursor(token)
        return cursor


def newest_first_page(
    query: Select, created_at: Any, row_id: Any, *, first: int, after: KeysetCursor | None
) -> Select:
    """`query` limited to the page after `after`: newest first, one row more than `first`.

    The extra row only tells whether another page follows. An index on (…filters, created_at,
    id) serves it.
    """
    if after is not None:
        query = query.where(tuple_(created_at, row_id) < tuple_(after.created_at, after.id))
    return query.order_by(created_at.desc(), row_id.desc()).limit(first + 1)
