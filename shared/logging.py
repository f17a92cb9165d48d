"""Structured JSON logs carrying the request id of the work in progress."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time

from shared.events import current_correlation_id

_configured = False


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, extras.

    It formats every access-log line, so it is a visible share of a short request: the
    timestamp's date and time are rendered once per second, the encoder is built once, and the
    extras are found by one set difference rather than a test per LogRecord attribute.
    """

    _skip = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service
        self._encode = json.JSONEncoder(default=str).encode
        #: (a whole second, its ISO 8601 text), replaced as one value so threads never mix two.
        self._second: tuple[int, str] = (-1, "")

    def timestamp(self, created: float) -> str:
        """`created` as datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")."""
        whole = int(created)
        # Rounded to the microsecond first, as datetime.fromtimestamp does.
        micros = round((created - whole) * 1e6)
        if micros >= 1_000_000:
            whole, micros = whole + 1, micros - 1_000_000
        second = self._second
        if second[0] != whole:
            second = (whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)))
            self._second = second
        return f"{second[1]}.{micros // 1000:03d}+00:00"

    def format(self, record: logging.LogRecord) -> str:
        """Render the record as JSON."""
        entry = {
            "ts": self.timestamp(record.created),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = current_correlation_id()
        if request_id:
            entry["request_id"] = request_id
        attributes = record.__dict__
        for key in attributes.keys() - self._skip:
            if not key.startswith("_"):
                entry[key] = attributes[key]
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return self._encode(entry)


class BatchedStreamHandler(logging.StreamHandler):
    """A StreamHandler that writes the lines it gets together, at most `delay` s after the first.

    For the access log (as nginx's `access_log ... buffer= flush=`): one write() per request was
    a visible share of a short request on a threaded server, where the GIL may change hands
    around every system call. Lines wait in memory until `max_lines` of them are there, or a
    daemon thread writes them `delay` seconds after the first, or the process exits normally
    (logging.shutdown flushes). A process that is killed loses its last `delay` seconds of
    lines, which is why only the access log goes through it; warnings and errors do not.
    """

    def __init__(self, stream=None, *, delay: float = 0.2, max_lines: int = 256) -> None:
        super().__init__(stream)
        self.delay = delay
        self.max_lines = max_lines
        self._lines: list[str] = []
        self._pending = threading.Event()
        self._flusher: threading.Thread | None = None

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the formatted line; write the batch once full (Handler.handle holds the lock)."""
        try:
            self._lines.append(self.format(record))
        except Exception:  # noqa: BLE001 - logging reports its own failures
            self.handleError(record)
            return
        if len(self._lines) >= self.max_lines:
            self.flush()
        elif not self._pending.is_set():
            self._pending.set()
            # Started on first use, and again in a forked child, which has no threads.
            if self._flusher is None or not self._flusher.is_alive():
                self._flusher = threading.Thread(
                    target=self._flush_when_pending, name="log-flusher", daemon=True
                )
                self._flusher.start()

    def flush(self) -> None:
        """Write every waiting line in one write()."""
        with self.lock:
            if self._lines:
                lines, self._lines = self._lines, []
                self.stream.write(self.terminator.join(lines) + self.terminator)
            super().flush()

    def _flush_when_pending(self) -> None:
        while True:
            self._pending.wait()
            time.sleep(self.delay)
            self._pending.clear()
            self.flush()


def configure_logging(service: str, level: str = "INFO") -> None:
    """Send every log record of the process to stderr as JSON (once per process).

    The access log ("dockyard.access") is written in batches (BatchedStreamHandler).
    """
    global _configured
    root = logging.getLogger()
    root.setLevel(level.upper())
    if _configured:
        return
    # The JSON lines carry no source location, so no record walks the stack to find one (the
    # logging HOWTO's "Optimization" advice; it was a visible share of every access-log line).
    logging._srcfile = None
    formatter = JsonFormatter(service)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root.handlers[:] = [handler]
    access = logging.getLogger("dockyard.access")
    batched = BatchedStreamHandler(sys.stderr)
    batched.setFormatter(formatter)
    access.handlers[:] = [batched]
    access.propagate = False
    for noisy in ("amqp", "kombu", "urllib3", "werkzeug"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    _configured = True
