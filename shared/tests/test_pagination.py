"""Keyset cursors: what encode() gives back decodes to the same position; nothing else does."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime

import pytest
from marshmallow import ValidationError

from shared.pagination import CursorField, InvalidCursor, KeysetCursor, RankCursor, decode_cursor


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
        _token(["2026-01-01T00:00:00", str(uuid.UUID(int=1))]),  # no timezone
        _token(["yesterday", str(uuid.UUID(int=1))]),
        _token(["2026-01-01T00:00:00+00:00", "not-a-uuid"]),
        _token(["2026-01-01T00:00:00+00:00", 5]),
        _token([20260101, str(uuid.UUID(int=1))]),
        _token({"a": 1, "b": 2}),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
def test_anything_else_is_an_invalid_cursor(token):
    with pytest.raises(InvalidCursor):
        KeysetCursor.decode(token)


@pytest.mark.parametrize("rank", [0.0, 0.0607927, 1 / 3, 1e-20, 7.0])
def test_a_rank_cursor_survives_its_round_trip_exactly(rank):
    cursor = RankCursor(rank, uuid.uuid4())
    assert RankCursor.decode(cursor.encode()) == cursor
    assert decode_cursor(cursor.encode()) == cursor


@pytest.mark.parametrize(
    "payload",
    [
        ["rank", "0.5", str(uuid.UUID(int=1))],
        ["rank", True, str(uuid.UUID(int=1))],
        ["other", 0.5, str(uuid.UUID(int=1))],
        ["rank", 0.5, "not-a-uuid"],
        ["rank", 0.5],
    ],
)
def test_anything_else_is_not_a_rank_cursor(payload):
    with pytest.raises(InvalidCursor):
        RankCursor.decode(_token(payload))


def test_the_two_kinds_of_cursor_never_decode_as_each_other():
    keyset = KeysetCursor(datetime(2026, 11, 28, tzinfo=UTC), uuid.uuid4()).encode()
    ranked = RankCursor(0.25, uuid.uuid4()).encode()
    with pytest.raises(InvalidCursor):
        RankCursor.decode(keyset)
    with pytest.raises(InvalidCursor):
        KeysetCursor.decode(ranked)


def test_a_cursor_field_takes_rank_cursors_only_where_asked():
    ranked = RankCursor(0.25, uuid.uuid4())
    with pytest.raises(ValidationError):
        CursorField().deserialize(ranked.encode())
    assert CursorField(ranked=True).deserialize(ranked.encode()) == ranked
