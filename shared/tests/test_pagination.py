"""Keyset cursors: what encode() gives back decodes to the same position; nothing else does."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime

import pytest

from shared.pagination import InvalidCursor, KeysetCursor


def _token(payload) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def test_a_cursor_survives_its_round_trip_to_the_microsecond():
    cursor = KeysetCursor(datetime(2026, 11, 28, 12, 0, 0, 123456, tzinfo=UTC), uuid.uuid4())
    token = cursor.encode()
    assert KeysetCursor.decode(token) == cursor
    assert "=" not in token and len(token) <= 120


def test_a_cursor_is_made_from_any_row_with_created_at_and_id():
    class Row:
        created_at = datetime(2026, 1, 1, tzinfo=UTC)
        id = str(uuid.UUID(int=7))

    assert KeysetCursor.of(Row()) == KeysetCursor(Row.created_at, uuid.UUID(int=7))


@pytest.mark.parametrize(
    "token",
    [
        "",
        "not base64 !",
        "x" * 300,
        _token("just a string"),
        _token(["2026-01-01T00:00:00+00:00"]),
        _token(["2026-01-01T00:00:00", str(uuid.uuid4())]),  # no timezone
        _token(["yesterday", str(uuid.uuid4())]),
        _token(["2026-01-01T00:00:00+00:00", "not-a-uuid"]),
        _token(["2026-01-01T00:00:00+00:00", 5]),
        _token([20260101, str(uuid.uuid4())]),
        _token({"a": 1, "b": 2}),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
def test_anything_else_is_an_invalid_cursor(token):
    with pytest.raises(InvalidCursor):
        KeysetCursor.decode(token)
