"""Keyset pagination, newest first: opaque cursors over (created_at, id) and the page query.

A cursor names the last row a client saw; the next page is the rows strictly before it in
(created_at DESC, id DESC) order. Rows inserted meanwhile land before the first page, so paging
on never repeats or skips one, and ties in created_at are broken by the id.

A list ordered by relevance (a search) pages the same way over (rank DESC, id DESC): its
`RankCursor` holds the rank and id of the last row seen (`best_match_page`).

Every list the services answer has the same shape, built here: `Page` of `Edge`s with a
`PageInfo` (`page_of`), serialised by `page_schema(NodeSchema)` with `CursorField` cursors.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from marshmallow import Schema, ValidationError, fields
from sqlalchemy import Select, tuple_

Row = TypeVar("Row")
Node = TypeVar("Node")

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


#: What a RankCursor's JSON starts with, so that it never decodes as a KeysetCursor.
_RANK_TAG = "rank"


@dataclass(frozen=True)
class RankCursor:
    """A position in a best-match-first list: the (rank, id) of the last row seen."""

    rank: float
    id: uuid.UUID

    def encode(self) -> str:
        """The opaque string clients pass back as `after`."""
        # repr-exact: json writes the shortest float that reads back as the same number.
        raw = json.dumps([_RANK_TAG, self.rank, str(self.id)], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> RankCursor:
        """Parse a string from encode(); raises InvalidCursor."""
        if len(token) > MAX_CURSOR_LENGTH:
            raise InvalidCursor(token[:MAX_CURSOR_LENGTH])
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            tag, rank, row_id = json.loads(raw)
            if tag != _RANK_TAG or not isinstance(rank, int | float) or isinstance(rank, bool):
                raise ValueError("not a rank cursor")
            if not math.isfinite(rank) or not isinstance(row_id, str):
                raise ValueError("not a rank cursor")
            return cls(float(rank), uuid.UUID(row_id))
        except (binascii.Error, UnicodeDecodeError, TypeError, ValueError):
            raise InvalidCursor(token) from None


def decode_cursor(token: str) -> KeysetCursor | RankCursor:
    """Either kind of cursor this API issues; raises InvalidCursor."""
    try:
        return KeysetCursor.decode(token)
    except InvalidCursor:
        return RankCursor.decode(token)


def best_match_page(
    query: Select, rank: Any, row_id: Any, *, first: int, after: RankCursor | None
) -> Select:
    """`query` limited to the page after `after`: best rank first, one row more than `first`.

    Ties in rank are broken by the id, so the order is total and paging on never repeats or
    skips a row (as long as the rows' ranks do not change meanwhile). `rank` must read back
    into Python exactly (double precision, not PostgreSQL's real), or a row could compare
    unequal to its own cursor.
    """
    if after is not None:
        query = query.where(tuple_(rank, row_id) < tuple_(after.rank, after.id))
    return query.order_by(rank.desc(), row_id.desc()).limit(first + 1)


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


@dataclass(frozen=True)
class Edge(Generic[Node]):
    """A listed item and the cursor that resumes the list after it."""

    cursor: KeysetCursor | RankCursor
    node: Node


@dataclass(frozen=True)
class PageInfo:
    """Where a page ends and whether another follows."""

    has_next_page: bool
    end_cursor: KeysetCursor | RankCursor | None


@dataclass(frozen=True)
class Page(Generic[Node]):
    """One page of a newest-first list, with the count of the whole list."""

    edges: list[Edge[Node]]
    page_info: PageInfo
    total_count: int


def page_of(
    rows: Sequence[Row],
    *,
    first: int,
    total_count: int,
    node: Callable[[Row], Node],
    cursor: Callable[[Row], KeysetCursor | RankCursor] = KeysetCursor.of,
) -> Page[Node]:
    """The page of `rows` fetched by `newest_first_page` (one more than `first` if more follow).

    `cursor` names each row's position: its (created_at, id) unless the list is ordered
    otherwise (a RankCursor for `best_match_page`).
    """
    edges = [Edge(cursor(row), node(row)) for row in rows[:first]]
    return Page(
        edges=edges,
        page_info=PageInfo(
            has_next_page=len(rows) > first, end_cursor=edges[-1].cursor if edges else None
        ),
        total_count=total_count,
    )


class CursorField(fields.String):
    """An opaque page cursor: a KeysetCursor inside, a string outside.

    With `ranked=True` a search's RankCursor is accepted too (the view tells them apart).
    """

    def __init__(self, *args: Any, ranked: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ranked = ranked

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else value.encode()

    def _deserialize(self, value, attr, data, **kwargs):
        token = super()._deserialize(value, attr, data, **kwargs)
        try:
            return decode_cursor(token) if self.ranked else KeysetCursor.decode(token)
        except InvalidCursor:
            raise ValidationError("Not a cursor this API returned.") from None


class PageInfoSchema(Schema):
    """Where a page ends and whether another follows."""

    has_next_page = fields.Boolean()
    end_cursor = CursorField(allow_none=True)


def page_schema(node_schema: type[Schema], noun: str) -> type[Schema]:
    """The schema of a `Page` of `node_schema` items: `<noun>Page` of `<noun>Edge` in OpenAPI."""
    edge = Schema.from_dict(
        {"cursor": CursorField(), "node": fields.Nested(node_schema)}, name=f"{noun}Edge"
    )
    return Schema.from_dict(
        {
            "edges": fields.List(fields.Nested(edge)),
            "page_info": fields.Nested(PageInfoSchema),
            "total_count": fields.Integer(),
        },
        name=f"{noun}Page",
    )
