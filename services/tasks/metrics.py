"""Scrape-time task gauges, read from the tasks schema at every scrape.

`dockyard_tasks{status}`: how many tasks are in each status. `dockyard_container_starts_per_second`:
container starts over the last minute. Containers are started by several processes (the launcher,
the Celery workers that retry), so the database is the one place that sees them all: no per-process
counter (and no multiprocess mode) is needed.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from services.tasks.models import Task, TaskStatus
from shared.gauges import DatabaseGauge

#: The span the start rate is averaged over: short enough to follow a burst, long enough that
#: a 15-30 s scrape interval never misses a start between two scrapes.
START_RATE_WINDOW_SECONDS = 60
#: Starts within the window, by the database's clock, so every replica serving /metrics reports
#: the same value whatever its own clock. ix_tasks_started_at serves the range.
RECENT_STARTS = select(func.count()).where(
    Task.started_at > func.now() - timedelta(seconds=START_RATE_WINDOW_SECONDS)
)


class TaskStatusCollector(DatabaseGauge):
    """Counts the tasks in each status at every scrape (every status present, 0 when none)."""

    name, documentation, labels = "dockyard_tasks", "Tasks in each status", ("status",)
    failure = "count tasks"

    def read(self, conn: Connection) -> dict[tuple[str, ...], float]:
        """How many tasks are in each status."""
        rows = conn.execute(select(Task.status, func.count()).group_by(Task.status)).all()
        counts = {status.value: 0 for status in TaskStatus}
        counts.update({str(status): count for status, count in rows})
        return {(status,): count for status, count in counts.items()}


class ContainerStartRateCollector(DatabaseGauge):
    """Container starts per second, averaged over the last minute, from `tasks.started_at`."""

    name = "dockyard_container_starts_per_second"
    documentation = (
        f"Container starts per second, a {START_RATE_WINDOW_SECONDS} s average: tasks whose"
        " started_at (the container's start) lies within that window of the database's clock,"
        " divided by the window. A retry overwrites started_at with its own start, so a task whose"
        " attempts start within one window counts once in it."
    )
    failure = "count container starts"

    def read(self, conn: Connection) -> dict[tuple[str, ...], float]:
        """The recent starts over the window."""
        return {(): conn.execute(RECENT_STARTS).scalar_one() / START_RATE_WINDOW_SECONDS}
