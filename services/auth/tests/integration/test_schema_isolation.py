"""Each service's role can use its own schema and nothing else."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import ProgrammingError


@pytest.mark.parametrize(
    ("role", "foreign"), [("auth", "files"), ("files", "tasks"), ("tasks", "auth")]
)
def test_a_service_role_cannot_read_another_services_schema(test_env, role, foreign):
    engine = create_engine(test_env.service_url(role))
    with engine.connect() as connection:
        assert connection.execute(text(f"SELECT count(*) FROM {role}.outbox")).scalar() >= 0
        with pytest.raises(ProgrammingError, match="permission denied"):
            connection.execute(text(f"SELECT count(*) FROM {foreign}.outbox"))
    engine.dispose()


def test_a_service_role_cannot_create_tables_in_public(test_env):
    engine = create_engine(test_env.service_url("auth"))
    with engine.connect() as connection, pytest.raises(ProgrammingError, match="permission denied"):
        connection.execute(text("CREATE TABLE public.sneaky (id int)"))
    engine.dispose()
