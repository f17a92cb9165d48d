"""The JSON log lines and the batched access log."""

from __future__ import annotations

import io
import json
import logging
import time
from datetime import UTC, datetime

from shared.logging import BatchedStreamHandler, JsonFormatter


def record(message: str, **extra) -> logging.LogRecord:
    """An INFO record of the access logger, as `access_log.info(message, extra=extra)` makes."""
    return logging.getLogger("dockyard.access").makeRecord(
        "dockyard.access", logging.INFO, __file__, 1, message, (), None, extra=extra
    )


def test_the_timestamp_is_utc_iso_8601_to_the_millisecond_as_datetime_prints_it():
    formatter = JsonFormatter("auth")
    for created in (0.0, 1.9999, 1725645262.885, 1700000000.9999996, time.time()):
        expected = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
        assert formatter.timestamp(created) == expected


def test_a_line_carries_the_extras_but_no_logrecord_attributes():
    line = json.loads(JsonFormatter("auth").format(record("GET /x 200", status=200, _hidden=1)))
    assert line["message"] == "GET /x 200"
    assert line["status"] == 200
    assert line["service"] == "auth"
    assert "_hidden" not in line and "thread" not in line and "args" not in line


def test_batched_lines_are_written_together_within_the_delay_in_order():
    stream = io.StringIO()
    handler = BatchedStreamHandler(stream, delay=0.05, max_lines=1000)
    handler.setFormatter(logging.Formatter("%(message)s"))
    for n in range(3):
        handler.handle(record(f"line {n}"))
    assert stream.getvalue() == ""
    deadline = time.monotonic() + 5
    while not stream.getvalue() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stream.getvalue() == "line 0\nline 1\nline 2\n"


def test_a_full_batch_is_written_at_once_and_flush_writes_the_rest():
    stream = io.StringIO()
    handler = BatchedStreamHandler(stream, delay=60, max_lines=2)
    handler.setFormatter(logging.Formatter("%(message)s"))
    for n in range(3):
        handler.handle(record(f"line {n}"))
    assert stream.getvalue() == "line 0\nline 1\n"
    handler.flush()
    assert stream.getvalue() == "line 0\nline 1\nline 2\n"
