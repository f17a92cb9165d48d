"""Scrape-time saga gauge: `dockyard_sagas{state}`, how many sagas are in each state."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from shared.sagas.store import Sagas

log = logging.getLogger(__name__)


class SagaCollector(Collector):
    """Counts one service's sagas by state at every scrape (FAILED ones are never dropped)."""

    def __init__(self, engine: Engine, sagas: Sagas) -> None:
        self.engine = engine
        self.sagas = sagas

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily("dockyard_sagas", "Sagas in each state", labels=["state"])

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """The metric's name, without querying."""
        yield self._family()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Count the sagas and yield the gauge (nothing when the database does not answer)."""
        family = self._family()
        try:
            with Session(self.engine) as session:
                counts = self.sagas.counts(session)
        except SQLAlchemyError:
            log.warning("could not count sagas for metrics", exc_info=True)
            return
        for state, count in sorted(counts.items()):
            family.add_metric([state], count)
        yield family
