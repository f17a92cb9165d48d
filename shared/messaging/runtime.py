"""What a relay or consumer process of one service needs: settings, tables, stopping, metrics."""

from __future__ import annotations

import logging
import os
import select
import signal
import threading
from dataclasses import dataclass

from prometheus_client import start_http_server
from sqlalchemy.engine import Engine

from shared.config import CommonSettings, database_url_var
from shared.db import make_engine
from shared.logging import configure_logging
from shared.registry import Service, ServiceRegistry

log = logging.getLogger(__name__)


def service_settings(service: Service) -> CommonSettings:
    """The common settings plus `<SERVICE>_DATABASE_URL` (as DATABASE_URL) of `service`.

    Not the service's own settings class: a relay or consumer must not require what only the
    service's web process reads (a signing key, storage credentials).
    """
    settings_class = type(
        f"{service.name.capitalize()}MessagingSettings",
        (CommonSettings,),
        {
            "DATABASE_URL": database_url_var(service.schema),
            "__doc__": f"Settings of {service.name}'s relay and consumer.",
        },
    )
    return settings_class()


@dataclass(frozen=True)
class ServiceRuntime:
    """What a relay or consumer process of one service starts from."""

    service: Service
    settings: CommonSettings
    engine: Engine
    stopper: Stopper


def start_runtime(registry: ServiceRegistry, name: str, role: str) -> ServiceRuntime:
    """Look `name` up, read its settings, log as `<name>-<role>`, stop on SIGTERM and SIGINT.

    ConfigError if the service is unknown, has no database, or its settings are wrong.
    """
    (service,) = registry.with_database([name])
    settings = service_settings(service)
    configure_logging(f"{service.name}-{role}", settings.LOG_LEVEL)
    engine = make_engine(settings.DATABASE_URL, schema=service.schema, pool_size=2)
    stopper = Stopper()
    stopper.install_signal_handlers()
    return ServiceRuntime(service, settings, engine, stopper)


class Stopper:
    """A stop flag that also wakes select(): set it from a signal handler or another thread."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)

    def fileno(self) -> int:
        """The descriptor that becomes readable once stop() was called."""
        return self._read_fd

    def stop(self) -> None:
        """Ask the loop to finish its current batch and return."""
        self._event.set()
        try:
            os.write(self._write_fd, b"\0")
        except BlockingIOError:
            pass

    def is_set(self) -> bool:
        """Whether stop() was called."""
        return self._event.is_set()

    def wait(self, timeout: float) -> bool:
        """Sleep up to `timeout` seconds, waking at once on stop(); returns is_set()."""
        if not self.is_set():
            select.select([self._read_fd], [], [], max(timeout, 0))
        return self.is_set()

    def install_signal_handlers(self) -> None:
        """Stop cleanly on SIGTERM and SIGINT (main thread only)."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, _frame) -> None:
        log.info("received %s; stopping", signal.Signals(signum).name)
        self.stop()

    def close(self) -> None:
        """Release the wake-up pipe."""
        for fd in (self._read_fd, self._write_fd):
            try:
                os.close(fd)
            except OSError:
                pass


def start_metrics_server(port: int | None) -> None:
    """Serve this process's Prometheus metrics on `port` (all interfaces) when one is given."""
    if port:
        start_http_server(port)
        log.info("metrics on :%s/metrics", port, extra={"metrics_port": port})
