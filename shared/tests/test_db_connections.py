"""Pooled connections without a ping per checkout: idle pings, retried reads, autocommit reads."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import DBAPIError

from shared.db import make_engine, make_read_engine, retry_on_disconnect


@pytest.fixture
def admin(test_env):
    """A superuser engine on this run's database, to terminate other sessions' backends."""
    url = make_url(test_env.admin_url).set(drivername="postgresql+psycopg2")
    engine = create_engine(url.set(database=test_env.database), isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


def backend_pid(engine) -> int:
    """The server process id of the connection the pool hands out next (pool_size=1)."""
    with engine.connect() as connection:
        return connection.execute(text("SELECT pg_backend_pid()")).scalar_one()


def terminate(admin, pid: int) -> None:
    """Kill a pooled connection's server process, as a server restart would."""
    with admin.connect() as connection:
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})


def select_one(engine) -> int:
    """One read on a pooled connection."""
    with engine.connect() as connection:
        return connection.execute(text("SELECT 1")).scalar_one()


def test_a_connection_used_again_soon_is_not_pinged_so_its_death_reaches_the_reader(
    test_env, admin
):
    engine = make_engine(test_env.service_url("auth"), schema="auth", pool_size=1)
    try:
        terminate(admin, backend_pid(engine))
        with pytest.raises(DBAPIError) as raised:
            select_one(engine)
        assert raised.value.connection_invalidated
        assert select_one(engine) == 1
    finally:
        engine.dispose()


def test_a_connection_idle_past_the_threshold_is_pinged_and_replaced(test_env, admin):
    engine = make_engine(
        test_env.service_url("auth"), schema="auth", pool_size=1, ping_after_idle=0
    )
    try:
        dead = backend_pid(engine)
        terminate(admin, dead)
        assert backend_pid(engine) != dead
    finally:
        engine.dispose()


def test_a_read_is_retried_once_on_a_fresh_connection_when_its_connection_died(test_env, admin):
    engine = make_engine(test_env.service_url("auth"), schema="auth", pool_size=1)
    try:
        terminate(admin, backend_pid(engine))
        assert retry_on_disconnect(lambda: select_one(engine)) == 1
    finally:
        engine.dispose()


def test_errors_other_than_a_dead_connection_are_not_retried(test_env):
    engine = make_engine(test_env.service_url("auth"), schema="auth", pool_size=1)
    calls = []

    def failing_read():
        calls.append(1)
        with engine.connect() as connection:
            connection.execute(text("SELECT 1/0"))

    try:
        with pytest.raises(DBAPIError):
            retry_on_disconnect(failing_read)
        assert len(calls) == 1
    finally:
        engine.dispose()


def test_the_read_engine_runs_statements_outside_any_transaction(test_env):
    engine = make_read_engine(test_env.service_url("auth"), schema="auth", pool_size=1)
    try:
        with engine.connect() as connection:
            assert connection.connection.dbapi_connection.autocommit is True
            # Each statement is its own transaction: two statements see two transaction ids.
            first = connection.execute(text("SELECT txid_current()")).scalar_one()
            second = connection.execute(text("SELECT txid_current()")).scalar_one()
        assert second != first
        assert connection.closed
    finally:
        engine.dispose()


def test_a_request_whose_connection_died_answers_a_retryable_503(test_env, admin):
    from shared.config import CommonSettings
    from shared.web import create_service_app

    engine = make_engine(test_env.service_url("auth"), schema="auth", pool_size=1)
    app, _api = create_service_app("probe", CommonSettings(), title="probe")

    @app.get("/read")
    def read():
        return {"one": select_one(engine)}

    try:
        terminate(admin, backend_pid(engine))
        response = app.test_client().get("/read")
        assert response.status_code == 503
        assert response.json == {
            "status": 503,
            "code": "SERVICE_UNAVAILABLE",
            "message": "The database is temporarily unavailable.",
        }
        assert response.headers["Retry-After"] == "1"
        assert app.test_client().get("/read").json == {"one": 1}
    finally:
        engine.dispose()


def test_a_failing_statement_is_still_a_500(test_env):
    from shared.config import CommonSettings
    from shared.web import create_service_app

    engine = make_engine(test_env.service_url("auth"), schema="auth", pool_size=1)
    app, _api = create_service_app("probe", CommonSettings(), title="probe")

    @app.get("/divide")
    def divide():
        with engine.connect() as connection:
            connection.execute(text("SELECT 1/0"))

    try:
        response = app.test_client().get("/divide")
        assert response.status_code == 500
        assert response.json["code"] == "INTERNAL_SERVER_ERROR"
    finally:
        engine.dispose()
