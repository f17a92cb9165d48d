"""Reconnecting to the broker or database after an outage: how long to wait, and what to log.

Every long-running process (relays, consumers, the gateway's event feed, the tasks launcher,
monitor and scheduler, the sagas sweeper) retries a lost RabbitMQ or PostgreSQL the same way:
a short first delay doubling up to RECONNECT_MAX_DELAY (1 s) with jitter, so work resumes
within about a second of the infrastructure coming back, and each attempt costs one connect.
An outage is expected, so each failed attempt is one WARNING line (what failed, the attempt,
the next delay) and the success after it one INFO line ("reconnected after N s"); any other
error keeps its traceback.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Any

import amqp.exceptions
import kombu.exceptions
import psycopg2
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError

#: First delay before reconnecting; it doubles on each failure.
RECONNECT_INITIAL_DELAY = 0.1
#: Longest delay between two attempts: an outage's end is noticed within about this long.
RECONNECT_MAX_DELAY = 1.0
#: Fraction of a delay drawn at random, so processes do not reconnect in lockstep.
RECONNECT_JITTER = 0.25

#: Errors that mean the broker is away or dropped the connection.
BROKER_ERRORS: tuple[type[BaseException], ...] = (
    amqp.exceptions.RecoverableConnectionError,
    amqp.exceptions.ConnectionError,
    kombu.exceptions.OperationalError,
    # Refused, reset, broken pipe, timed out, "Server unexpectedly closed connection".
    OSError,
)
#: Errors that mean PostgreSQL is away or dropped the connection (psycopg2's own for raw
#: connections such as LISTEN ones; SQLAlchemy wraps the same in OperationalError).
DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    DisconnectionError,
    psycopg2.OperationalError,
    psycopg2.InterfaceError,
)


def is_database_outage(exc: BaseException) -> bool:
    """Whether `exc` says PostgreSQL is unreachable or dropped the connection."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, DATABASE_ERRORS)


def is_outage(exc: BaseException) -> bool:
    """Whether `exc` says the broker or the database is unreachable (expected, retried)."""
    # Imported here: shared.messaging imports this module. A PublishError is a nack (a full
    # queue that rejects publishes), a return or a confirm that did not come: retried too.
    from shared.messaging.broker import PublishError

    return is_database_outage(exc) or isinstance(exc, BROKER_ERRORS + (PublishError,))


def summary(exc: BaseException) -> str:
    """The exception as one line: its type and the first line of its message."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def reconnect_delay(failures: int) -> float:
    """The delay before the attempt that follows `failures` failed ones (Backoff's, statelessly)."""
    bound = min(RECONNECT_INITIAL_DELAY * 2 ** max(failures - 1, 0), RECONNECT_MAX_DELAY)
    return bound * (1 - RECONNECT_JITTER * random.random())


class Backoff:
    """Delays for reconnecting: `initial`, doubling up to `maximum`, less up to `jitter` of each."""

    def __init__(
        self,
        initial: float = RECONNECT_INITIAL_DELAY,
        maximum: float = RECONNECT_MAX_DELAY,
        jitter: float = RECONNECT_JITTER,
    ) -> None:
        self.initial = min(initial, maximum)
        self.maximum = maximum
        self.jitter = jitter
        self._next = self.initial

    def next(self) -> float:
        """The delay to wait now; the following one doubles (up to the maximum)."""
        delay = self._next * (1 - self.jitter * random.random())
        self._next = min(self._next * 2, self.maximum)
        return delay

    def reset(self) -> None:
        """Start again from the initial delay (after a success)."""
        self._next = self.initial


class Reconnects:
    """The backoff and log lines of one loop that reconnects (`what` names it in the log)."""

    def __init__(
        self,
        what: str,
        logger: logging.Logger,
        *,
        backoff: Backoff | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.what = what
        self.logger = logger
        self.backoff = backoff or Backoff()
        self.extra = extra or {}
        #: Failed attempts since the last success.
        self.attempts = 0
        self._since: float | None = None

    def failed(self, exc: BaseException, *, delay: float | None = None) -> float:
        """Log a failed attempt and return the delay to wait before the next one.

        An outage (is_outage) is one WARNING line; anything else is logged with its traceback.
        `delay` is the one the caller waits when its own policy chooses it (kombu's, say).
        """
        self.attempts += 1
        if self._since is None:
            self._since = time.monotonic()
        delay = self.backoff.next() if delay is None else delay
        extra = {**self.extra, "attempt": self.attempts, "retry_in": round(delay, 3)}
        if is_outage(exc):
            self.logger.warning(
                "%s: %s (attempt %d); retrying in %.1f s",
                self.what,
                summary(exc),
                self.attempts,
                delay,
                extra=extra,
            )
        else:
            self.logger.error(
                "%s failed (attempt %d); retrying in %.1f s",
                self.what,
                self.attempts,
                delay,
                exc_info=exc,
                extra=extra,
            )
        return delay

    def succeeded(self) -> None:
        """Note a success: log "reconnected after N s" if attempts had failed, reset the delay."""
        if self._since is not None:
            outage = time.monotonic() - self._since
            self.logger.info(
                "%s: reconnected after %.1f s (%d failed attempts)",
                self.what,
                outage,
                self.attempts,
                extra={**self.extra, "outage_seconds": round(outage, 3)},
            )
        self.attempts = 0
        self._since = None
        self.backoff.reset()
