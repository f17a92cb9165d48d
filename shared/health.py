"""Readiness probes for the dependencies a process needs."""

from __future__ import annotations

from collections.abc import Callable

import redis
from kombu import Connection
from sqlalchemy import text
from sqlalchemy.engine import Engine


def database_check(engine: Engine) -> Callable[[], None]:
    """A probe that runs `SELECT 1` on the service's own database."""

    def check() -> None:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    return check


def broker_check(amqp_url: str, timeout: float = 2.0) -> Callable[[], None]:
    """A probe that opens (and closes) a connection to RabbitMQ."""

    def check() -> None:
        with Connection(amqp_url, connect_timeout=timeout) as connection:
            connection.ensure_connection(max_retries=1, timeout=timeout)

    return check


def redis_check(client: redis.Redis) -> Callable[[], None]:
    """A probe that pings Redis."""

    def check() -> None:
        client.ping()

    return check
