"""Rebuilding the shared revocation list in Redis from auth's database, which is its record.

Redis runs without persistence, so a restart empties it and every logged-out token would pass
again. Verifiers trust the list only while its "ready" marker is there (shared.auth), and auth
puts it back: at start-up, when its own verifier finds the marker missing, and from a watcher
thread that looks once a second, so files and tasks recover even when auth gets no request.
"""

from __future__ import annotations

import logging
import threading
import weakref
from datetime import UTC, datetime, timedelta

import redis
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from services.auth.models import TokenFamily
from shared.auth import RevocationList

log = logging.getLogger(__name__)


def revoked_families(engine: Engine, *, within_seconds: int) -> dict[str, int]:
    """Families revoked in the last `within_seconds` seconds -> seconds their tokens may live on.

    An access token lives at most `within_seconds` (the access-token lifetime), so a family
    revoked longer ago has no live token left to refuse; its refresh tokens are refused by the
    database itself.
    """
    now = datetime.now(UTC)
    since = now - timedelta(seconds=within_seconds)
    with engine.connect() as connection:
        rows = connection.execute(
            select(TokenFamily.id, TokenFamily.revoked_at).where(TokenFamily.revoked_at > since)
        ).all()
    return {
        str(family_id): max(1, int(within_seconds - (now - revoked_at).total_seconds()) + 1)
        for family_id, revoked_at in rows
    }


class DenyListKeeper:
    """Puts the revocation list back whenever its ready marker is missing."""

    def __init__(
        self,
        engine: Engine,
        revocations: RevocationList,
        *,
        access_ttl: int,
        check_every: float = 1.0,
    ) -> None:
        self.engine = engine
        self.revocations = revocations
        self.access_ttl = access_ttl
        self.check_every = check_every
        self._rebuilding = threading.Lock()
        self._stopped = threading.Event()
        self._failing = False

    def rebuild(self) -> int:
        """Write every family revoked within the access-token lifetime, then the marker."""
        with self._rebuilding:
            # Another thread may have rebuilt it while this one waited for the lock.
            if self.revocations.is_ready():
                return 0
            families = revoked_families(self.engine, within_seconds=self.access_ttl)
            # Every logout and reuse revokes the family of the token it names, so the
            # families cover every revoked access token: there is no lone token id to restore.
            self.revocations.restore(families=families, token_ids={})
        log.warning("revocation list rebuilt from the database", extra={"families": len(families)})
        return len(families)

    def rebuild_if_missing(self) -> None:
        """Rebuild when the marker is missing; log (once per outage) when that cannot be done."""
        try:
            if not self.revocations.is_ready():
                self.rebuild()
        except (redis.RedisError, SQLAlchemyError) as exc:
            if not self._failing:
                log.error("cannot rebuild the revocation list: %s", exc)
            self._failing = True
        else:
            self._failing = False

    def start(self) -> DenyListKeeper:
        """Rebuild now if needed, then watch the marker from a daemon thread."""
        self.rebuild_if_missing()
        threading.Thread(
            target=_watch, args=(weakref.ref(self), self._stopped, self.check_every),
            name="deny-list-keeper", daemon=True,
        ).start()  # fmt: skip
        return self

    def stop(self) -> None:
        """End the watcher thread."""
        self._stopped.set()


def _watch(keeper_ref: weakref.ref, stopped: threading.Event, every: float) -> None:
    # A weak reference: an app that is gone (many are built and dropped in one test process)
    # takes its watcher with it instead of leaving it polling a dropped database.
    while not stopped.wait(every):
        keeper = keeper_ref()
        if keeper is None:
            return
        keeper.rebuild_if_missing()
        del keeper


class AuthRevocations(RevocationList):
    """Auth's revocation list, which also knows how long its access tokens live."""

    def __init__(self, client: redis.Redis, *, namespace: str, access_ttl: int, **options) -> None:
        super().__init__(client, namespace=namespace, **options)
        #: Seconds a revocation must be remembered: the longest an access token lives.
        self.access_ttl = access_ttl
