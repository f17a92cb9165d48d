"""Scrape-time task gauges, read from the tasks schema at every scrape.

`dockyard_tasks{status}`: how many tasks are in each status. `dockyard_container_starts_per_second`:
container starts over the last minute. Containers are started by several processes (the launcher,
the Celery workers that retry), so the database is the one place that sees them all: no per-process
counter (and no multiprocess mode) is needed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from services.tasks.models import Task, TaskStatus

log = logging.getLogger(__name__)

#: The span the start rate is averaged over: short enough to follow a burst, long enough that
#: a 15-30 s scrape interval never misses a start between two scrapes.
START_RATE_WINDOW_SECONDS = 60
#: Starts within the window, by the database's clock, so every replica serving /metrics reports
#: the same value whatever its own clock. ix_tasks_started_at serves the range.
RECENT_STARTS = select(func.count()).where(
    Task.started_at > func.now() - timedelta(seconds=START_RATE_WINDOW_SECONDS)
)


class TaskStatusCollector(Collector):
    """Counts the tasks in each status at every scrape (every status present, 0 when none)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily("dockyard_tasks", "Tasks in each status", labels=["status"])

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """The metric's name, without querying."""
        yield self._family()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Count the tasks and yield the gauge (nothing when the database does not answer)."""
        family = self._family()
        statement = select(Task.status, func.count()).group_by(Task.status)
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(statement).all()
        except SQLAlchemyError:
            log.warning("could not count tasks for metrics", exc_info=True)
            return
        counts = {status.value: 0 for status in TaskStatus}
        counts.update({str(status): count for status, count in rows})
        for status, count in sorted(counts.items()):
            family.add_metric([status], count)
        yield family


class ContainerStartRateCollector(Collector):
    """Container starts per second, averaged over the last minute, from `tasks.started_at`."""

    HELP = (
        f"Container starts per second, a {START_RATE_WINDOW_SECONDS} s average: tasks whose"
        " started_at (the container's start) lies within that window of the database's clock,"
        " divided by the window. A retry overwrites started_at with its own start, so a task whose"
        " attempts start within one window counts once in it."
    )

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def _family(cls) -> GaugeMetricFamily:
        return GaugeMetricFamily("dockyard_container_starts_per_second", cls.HELP)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """The metric's name, without querying."""
        yield self._family()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Count the recent starts and yield the rate (nothing when the database is away)."""
        try:
            with self.engine.connect() as conn:
                starts = conn.execute(RECENT_STARTS).scalar_one()
        except SQLAlchemyError:
            log.warning("could not count container starts for metrics", exc_info=True)
            return
        family = self._family()
        family.add_metric([], starts / START_RATE_WINDOW_SECONDS)
        yield family
