"""One page shape for every list: edges with cursors, page info, total, and their schema."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from marshmallow import Schema, ValidationError, fields

from shared.pagination import KeysetCursor, page_of, page_schema


@dataclass
class Row:
    created_at: datetime
    id: uuid.UUID
    name: str


class ItemSchema(Schema):
    name = fields.String()


def _rows(count: int) -> list[Row]:
    start = datetime(2026, 11, 30, tzinfo=UTC)
    return [Row(start - timedelta(seconds=i), uuid.uuid4(), f"r{i}") for i in range(count)]


def test_the_extra_row_only_says_another_page_follows():
    rows = _rows(3)
    page = page_of(rows, first=2, total_count=10, node=lambda row: row.name)
    assert [edge.node for edge in page.edges] == ["r0", "r1"]
    assert page.page_info.has_next_page is True
    assert page.page_info.end_cursor == KeysetCursor.of(rows[1])
    assert page.total_count == 10


def test_a_last_page_has_no_next_and_an_empty_one_no_end_cursor():
    last = page_of(_rows(2), first=2, total_count=2, node=lambda row: row)
    empty = page_of([], first=5, total_count=0, node=lambda row: row)
    assert last.page_info.has_next_page is False
    assert empty.edges == [] and empty.page_info.end_cursor is None


def test_the_page_schema_writes_opaque_cursors_and_reads_them_back():
    rows = _rows(2)
    page = page_of(rows, first=1, total_count=2, node=lambda row: row)
    dumped = page_schema(ItemSchema, "Item")().dump(page)
    assert dumped["edges"][0]["node"] == {"name": "r0"}
    token = dumped["page_info"]["end_cursor"]
    assert dumped["edges"][0]["cursor"] == token
    assert KeysetCursor.decode(token) == KeysetCursor.of(rows[0])
    assert dumped["total_count"] == 2 and dumped["page_info"]["has_next_page"] is True


def test_a_forged_cursor_is_a_validation_error_on_load():
    edge_schema = page_schema(ItemSchema, "Item")().fields["edges"].inner.schema
    with pytest.raises(ValidationError) as error:
        edge_schema.load({"cursor": "bm90IGEgY3Vyc29y", "node": {"name": "x"}})
    assert error.value.messages == {"cursor": ["Not a cursor this API returned."]}
