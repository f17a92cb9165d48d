"""Intake back-pressure: refuse new uploads (503, Retry-After) while processing is far behind.

The backlog is the files still waiting for or in processing plus the events not yet relayed
(the outbox). Counted at most once a second per process, and only up to the limit (a bounded
scan of the partial index of unfinished files), so the check costs next to nothing per upload.
"""

from __future__ import annotations

import threading
import time

from sqlalchemy import text
from sqlalchemy.engine import Engine

#: How long one count is trusted.
RECOUNT_SECONDS = 1.0

_BACKLOG = text(
    "SELECT (SELECT count(*) FROM (SELECT 1 FROM files WHERE status IN ('UPLOADED', 'PROCESSING')"
    " LIMIT :limit) AS unfinished) + (SELECT count(*) FROM (SELECT 1 FROM outbox LIMIT :limit)"
    " AS pending)"
)


class IntakeGuard:
    """Says whether an upload may be taken now; see the module docstring."""

    def __init__(self, engine: Engine, *, max_backlog: int, retry_after: int) -> None:
        self.engine = engine
        self.max_backlog = max_backlog
        self.retry_after = retry_after
        self._lock = threading.Lock()
        self._backlog = 0
        self._counted_at = float("-inf")

    def backlog(self) -> int:
        """Unfinished files plus unrelayed events (each counted up to the limit), recent."""
        with self._lock:
            if time.monotonic() - self._counted_at >= RECOUNT_SECONDS:
                with self.engine.connect() as conn:
                    self._backlog = conn.execute(_BACKLOG, {"limit": self.max_backlog}).scalar_one()
                self._counted_at = time.monotonic()
            return self._backlog

    def must_slow(self) -> bool:
        """Whether the backlog has reached the limit (0 turns the guard off)."""
        return self.max_backlog > 0 and self.backlog() >= self.max_backlog
