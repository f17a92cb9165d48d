"""Scrape-time task gauge: `dockyard_tasks{status}`, how many tasks are in each status."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from services.tasks.models import Task, TaskStatus

log = logging.getLogger(__name__)


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
