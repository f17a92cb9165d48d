"""Scrape-time files gauge: `dockyard_file_processing_bytes_per_second{status}`.

Files are processed in Celery prefork workers, whose children a per-process counter would need
multiprocess mode to add up; the files table already records every outcome, so /metrics reads the
rate from it at each scrape instead.
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

from services.files.models import File, FileStatus

log = logging.getLogger(__name__)

#: The span the rate is averaged over: short enough to follow a burst, long enough that a 15-30 s
#: scrape interval never misses a file between two scrapes.
PROCESSING_RATE_WINDOW_SECONDS = 60
#: The outcomes that set processed_at (processing.py), each reported even when 0.
FINISHED = (FileStatus.PROCESSED, FileStatus.FAILED)
#: Bytes per outcome within the window, by the database's clock (every replica serving /metrics
#: reports the same); ix_files_processed_at serves the range, whatever the table's size.
RECENT_BYTES = (
    select(File.status, func.sum(File.size))
    .where(File.processed_at > func.now() - timedelta(seconds=PROCESSING_RATE_WINDOW_SECONDS))
    .group_by(File.status)
)


class FileProcessingRateCollector(Collector):
    """Bytes of files whose processing ended in the last minute, per second, by outcome."""

    HELP = (
        f"Bytes of files whose processing ended in the last {PROCESSING_RATE_WINDOW_SECONDS} s"
        " (processed_at that recent, by the database's clock), divided by the window: a"
        " one-minute average of processing throughput, by outcome (PROCESSED or FAILED)."
    )

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def _family(cls) -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "dockyard_file_processing_bytes_per_second", cls.HELP, labels=["status"]
        )

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """The metric's name, without querying."""
        yield self._family()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Sum the recent files' sizes and yield the rates (nothing when the database is away)."""
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(RECENT_BYTES).all()
        except SQLAlchemyError:
            log.warning("could not sum processed files for metrics", exc_info=True)
            return
        sizes = {status.value: 0 for status in FINISHED}
        sizes.update({str(status): int(total) for status, total in rows})
        family = self._family()
        for status, total in sorted(sizes.items()):
            family.add_metric([status], total / PROCESSING_RATE_WINDOW_SECONDS)
        yield family
