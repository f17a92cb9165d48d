"""The services the kernel works for, handed to it explicitly: shared/ never imports a service.

`services/registry.py` builds one `ServiceRegistry` and hands it to the `dockyard` command
(shared.cli), which hands each entry to the relay, the consumer and the migrations, and to the
test set-up (shared.testing.TestEnvironment). A service with a database has its own schema,
role and `<NAME>_DATABASE_URL` (all named after it), outbox and inbox tables, and an Alembic
tree; a service without one (the gateway) contributes only its settings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from shared.config import ConfigError, Settings
from shared.outbox.tables import MessagingTables

if TYPE_CHECKING:
    from shared.messaging.consumer import Subscription
    from shared.sagas.store import Sagas


def _no_subscriptions() -> Sequence[Subscription]:
    return ()


def _no_sagas() -> Sagas | None:
    return None


@dataclass(frozen=True)
class Service:
    """One service as the kernel needs it.

    `subscriptions` is called only by `dockyard consume`: handlers import what they react with
    (Celery apps, storage clients), which the other commands do not need to load.
    """

    name: str
    settings: type[Settings]
    tables: MessagingTables | None = None
    migrations: Path | None = None
    subscriptions: Callable[[], Sequence[Subscription]] = field(default=_no_subscriptions)
    #: The sagas the service orchestrates (`dockyard sagas`), loaded only by that command.
    sagas: Callable[[], Sagas | None] = field(default=_no_sagas)

    @property
    def has_database(self) -> bool:
        """Whether the service owns a schema (and so an outbox, an inbox and migrations)."""
        return self.tables is not None

    @property
    def schema(self) -> str:
        """The service's PostgreSQL schema (also its role's and its URL variable's name)."""
        if self.tables is None:
            raise ConfigError(f"service {self.name!r} has no database")
        return self.tables.outbox.schema or self.name


@dataclass(frozen=True)
class ServiceRegistry:
    """Every service, in a fixed order (provisioning and migrations follow it)."""

    services: tuple[Service, ...]

    def __post_init__(self) -> None:
        names = [service.name for service in self.services]
        if len(set(names)) != len(names):
            raise ValueError(f"service names repeat: {names}")
        for service in self.services:
            if service.has_database and service.migrations is None:
                raise ValueError(f"service {service.name!r} has tables but no migrations")

    def __iter__(self) -> Iterator[Service]:
        return iter(self.services)

    def get(self, name: str) -> Service:
        """The service called `name`; ConfigError naming the known ones otherwise."""
        for service in self.services:
            if service.name == name:
                return service
        known = ", ".join(s.name for s in self.services)
        raise ConfigError(f"unknown service {name!r} (known: {known})")

    def with_database(self, names: Sequence[str] = ()) -> list[Service]:
        """The services that own a schema, all of them or those named (ConfigError if not)."""
        if not names:
            return [service for service in self.services if service.has_database]
        chosen = [self.get(name) for name in names]
        for service in chosen:
            if not service.has_database:
                raise ConfigError(f"service {service.name!r} has no database")
        return chosen
