"""Gauges read from a service's own database at every scrape (one query, no per-process state).

Processes that change the rows (web workers, Celery prefork children, the launcher) need no
metrics of their own and no multiprocess mode: whichever process serves /metrics reads the
truth. A database that does not answer leaves the gauge out rather than reporting 0.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger(__name__)


class DatabaseGauge(Collector):
    """One gauge, its values read by `read` on a fresh connection at each scrape."""

    #: The metric's name, help text and label names; subclasses set them.
    name: str
    documentation: str
    labels: tuple[str, ...] = ()
    #: What the warning says could not be done when the database does not answer.
    failure: str = "read the database"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def read(self, conn: Connection) -> dict[tuple[str, ...], float]:
        """The gauge's values by their label values (the empty tuple for an unlabelled one)."""
        raise NotImplementedError

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(self.name, self.documentation, labels=list(self.labels))

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """The metric's name, without querying."""
        yield self._family()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Read the values and yield the gauge (nothing when the database does not answer)."""
        try:
            with self.engine.connect() as conn:
                values = self.read(conn)
        except SQLAlchemyError:
            log.warning("could not %s for metrics", self.failure, exc_info=True)
            return
        family = self._family()
        for labels, value in sorted(values.items()):
            family.add_metric(list(labels), value)
        yield family
