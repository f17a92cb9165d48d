"""The hand-built `me` document says exactly what UserSchema says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from services.auth.schemas import UserSchema, user_document
from services.auth.service import UserView


def test_user_document_matches_the_user_schema():
    for zone in (UTC, timezone(timedelta(hours=5, minutes=30))):
        user = UserView(
            id="0b8f6d0e-5c1e-4c53-9d3e-0d6f1f1f7a11",
            email="ünïcødé@example.com",
            created_at=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=zone),
        )
        assert user_document(user) == UserSchema().dump(user)
