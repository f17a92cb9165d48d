"""Fixtures of the shared kernel's messaging tests: the auth schema, probe events, processes."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from shared.db import make_engine


@pytest.fixture(scope="session")
def auth_engine(test_env):
    """An engine on the auth schema as the auth role, with a `probe_log` table for handlers."""
    engine = make_engine(test_env.service_url("auth"), schema="auth", pool_size=4)
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE IF NOT EXISTS probe_log ("
                " id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, consumer text NOT NULL,"
                " event_id uuid NOT NULL, aggregate_id text NOT NULL, sequence bigint NOT NULL,"
                " n integer NOT NULL)"
            )
        )
    yield engine
    engine.dispose()
