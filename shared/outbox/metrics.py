"""Scrape-time outbox gauges: how many events wait to be published and how long the oldest has."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Table, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger(__name__)


class OutboxCollector(Collector):
    """Queries one service's outbox at every scrape (register it with a CollectorRegistry).

    `dockyard_outbox_pending` counts unpublished rows, `dockyard_outbox_lag_seconds` is the age
    of the oldest one (0 when empty) and `dockyard_outbox_collector_up` is 0 when the query
    failed, in which case the other two are left out rather than reported as 0.
    """

    def __init__(self, engine: Engine, outbox: Table, *, source: str) -> None:
        self.engine = engine
        self.outbox = outbox
        self.source = source

    def _families(self) -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                "dockyard_outbox_pending", "Outbox rows not yet published", labels=["source"]
            ),
            GaugeMetricFamily(
                "dockyard_outbox_lag_seconds",
                "Age of the oldest unpublished outbox row (0 when empty)",
                labels=["source"],
            ),
            GaugeMetricFamily(
                "dockyard_outbox_collector_up",
                "1 if the outbox could be queried at this scrape",
                labels=["source"],
            ),
        )

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """The metric names, without querying (prometheus_client calls this on register)."""
        yield from self._families()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Query the outbox and yield the gauges."""
        pending, lag, up = self._families()
        outbox = self.outbox
        # The oldest row by id uses the primary key; occurred_at has no index.
        oldest = select(outbox.c.occurred_at).order_by(outbox.c.id).limit(1).scalar_subquery()
        statement = select(
            select(func.count()).select_from(outbox).scalar_subquery(),
            func.coalesce(func.extract("epoch", func.now() - oldest), 0),
        )
        try:
            with self.engine.connect() as conn:
                count, age = conn.execute(statement).one()
        except SQLAlchemyError:
            log.warning("could not query the outbox for metrics", exc_info=True)
            up.add_metric([self.source], 0)
            yield up
            return
        pending.add_metric([self.source], count)
        lag.add_metric([self.source], max(float(age), 0.0))
        up.add_metric([self.source], 1)
        yield from (pending, lag, up)
