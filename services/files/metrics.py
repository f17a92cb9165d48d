"""Scrape-time files gauge: `dockyard_file_processing_bytes_per_second{status}`.

Files are processed in Celery prefork workers, whose children a per-process counter would need
multiprocess mode to add up; the files table already records every outcome, so /metrics reads the
rate from it at each scrape instead.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from services.files.models import File, FileStatus
from shared.gauges import DatabaseGauge

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


class FileProcessingRateCollector(DatabaseGauge):
    """Bytes of files whose processing ended in the last minute, per second, by outcome."""

    name, labels = "dockyard_file_processing_bytes_per_second", ("status",)
    documentation = (
        f"Bytes of files whose processing ended in the last {PROCESSING_RATE_WINDOW_SECONDS} s"
        " (processed_at that recent, by the database's clock), divided by the window: a"
        " one-minute average of processing throughput, by outcome (PROCESSED or FAILED)."
    )
    failure = "sum processed files"

    def read(self, conn: Connection) -> dict[tuple[str, ...], float]:
        """The recent files' bytes over the window, by outcome."""
        sizes = {status.value: 0 for status in FINISHED}
        sizes.update({str(status): int(total) for status, total in conn.execute(RECENT_BYTES)})
        return {
            (status,): total / PROCESSING_RATE_WINDOW_SECONDS for status, total in sizes.items()
        }
