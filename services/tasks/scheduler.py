"""The scheduler process: fires due schedules (firing.py), asleep until the next fire time.

Run: `python -m services.tasks.scheduler` (Procfile `scheduler-tasks`). Run as many as you like:
each due schedule is fired by one of them (firing.py says how), and the others skip it.

It sleeps until the earliest fire time of any active schedule, not a fixed poll: a schedule
created or resumed meanwhile (which may be due sooner) wakes it through LISTEN/NOTIFY on
schedules.SCHEDULES_CHANGED_CHANNEL, and so does another scheduler committing a fire it was
waiting on. TASKS_SCHEDULER_SAFETY_POLL_SECONDS bounds the sleep all the same, should a signal
be lost with a connection.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial

from services.tasks.config import TasksSettings
from services.tasks.firing import fire_all_due, next_due_at
from services.tasks.models import SCHEMA
from services.tasks.schedules import SCHEDULES_CHANGED_CHANNEL, SchedulePolicy
from services.tasks.service import TaskPolicy
from shared.db import UnitOfWork, make_engine, session_factory
from shared.logging import configure_logging
from shared.messaging.runtime import Stopper
from shared.pg_listen import ChannelListener
from shared.reconnect import Reconnects

log = logging.getLogger(__name__)

#: How long to wait for another scheduler's fire of a due schedule to commit (it notifies).
HELD_ELSEWHERE_SECONDS = 0.2
#: A schedule whose firing failed is tried again after this, doubling up to the maximum.
FAILED_RETRY_SECONDS = 1.0
FAILED_RETRY_MAX_SECONDS = 300.0


def utc_now() -> datetime:
    """The wall clock, in UTC (tests pass a clock of their own)."""
    return datetime.now(UTC)


class Scheduler:
    """One scheduler: fires what is due, then sleeps until the next fire time or a signal."""

    def __init__(
        self,
        settings: TasksSettings,
        stopper: Stopper,
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.settings = settings
        self.stopper = stopper
        self.clock = clock
        self.policy = SchedulePolicy.from_settings(settings)
        self.task_policy = TaskPolicy.from_settings(settings)
        self.database = make_engine(
            settings.DATABASE_URL, schema=SCHEMA, pool_size=2, hide_parameters=True
        )
        self.uow = partial(
            UnitOfWork, session_factory(self.database), schema=SCHEMA, source="tasks"
        )
        self.safety_poll = settings.SCHEDULER_SAFETY_POLL_SECONDS
        #: Schedules whose firing failed: (monotonic time to try again, the delay that was).
        self.failing: dict[uuid.UUID, tuple[float, float]] = {}

    def _held_back(self) -> set[uuid.UUID]:
        now = time.monotonic()
        return {schedule_id for schedule_id, (at, _) in self.failing.items() if at > now}

    def _failed(self, schedule_id: uuid.UUID) -> None:
        _, delay = self.failing.get(schedule_id, (0.0, FAILED_RETRY_SECONDS / 2))
        delay = min(delay * 2, FAILED_RETRY_MAX_SECONDS)
        self.failing[schedule_id] = (time.monotonic() + delay, delay)

    def tick(self) -> float:
        """Fire everything due now; the seconds to sleep before looking again."""
        firings = fire_all_due(
            self.uow,
            now=self.clock(),
            policy=self.policy,
            task_policy=self.task_policy,
            stopping=self.stopper.is_set,
            skip=self._held_back(),
        )
        for firing in firings:
            if firing.failed:
                self._failed(firing.schedule_id)
                continue
            self.failing.pop(firing.schedule_id, None)
            log.info(
                "schedule %s fired",
                firing.schedule_id,
                extra={
                    "schedule_id": str(firing.schedule_id),
                    "started": len(firing.started),
                    "skipped": len(firing.skipped),
                    "missed": firing.missed,
                },
            )
        held_back = self._held_back()
        # A failed schedule is tried again after its delay, even if nothing else is due.
        now = time.monotonic()
        retries = [at - now for at, _ in self.failing.values() if at > now]
        longest = min([self.safety_poll, *retries])
        next_due = next_due_at(self.uow(), skip=held_back)
        if next_due is None:
            return longest
        delay = (next_due - self.clock()).total_seconds()
        if delay > 0:
            return min(delay, longest)
        # Due but not fired here: another scheduler holds it (its commit signals), unless it
        # came due while this pass fired others.
        return 0.0 if firings else min(HELD_ELSEWHERE_SECONDS, longest)

    def run(self) -> None:
        """Fire schedules until stopped, starting over after a lost database."""
        wakeups = ChannelListener(self.database, SCHEDULES_CHANGED_CHANNEL)
        reconnects = Reconnects("scheduler pass", log)
        log.info("scheduler started")
        while not self.stopper.is_set():
            try:
                wakeups.forget()
                delay = self.tick()
                reconnects.succeeded()
                wakeups.wait(delay, also=[self.stopper.fileno()])
            except Exception as exc:
                pause = reconnects.failed(exc)
                wakeups.close()
                self.stopper.wait(pause)
        wakeups.close()
        self.database.dispose()
        log.info("scheduler stopped")


def main() -> int:
    """`python -m services.tasks.scheduler`: fire due schedules until SIGTERM or SIGINT."""
    settings = TasksSettings()
    configure_logging("tasks-scheduler", settings.LOG_LEVEL)
    stopper = Stopper()
    stopper.install_signal_handlers()
    Scheduler(settings, stopper).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
