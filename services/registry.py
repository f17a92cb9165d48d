"""Dockyard's services, listed once and handed to the kernel (shared/ never imports a service).

The `dockyard` command is `main` below: it runs shared.cli with this registry. The test session
(conftest.py) and the benchmarks hand it to shared.testing.TestEnvironment.
"""

from __future__ import annotations

import sys
from pathlib import Path

from services.auth import models as auth_models
from services.auth.config import AuthSettings
from services.files import models as files_models
from services.files.config import FilesSettings
from services.gateway.config import GatewaySettings
from services.tasks import models as tasks_models
from services.tasks.config import TasksSettings
from shared import cli
from shared.registry import Service, ServiceRegistry

HERE = Path(__file__).resolve().parent


def _auth_subscriptions():
    from services.auth.handlers import SUBSCRIPTIONS

    return SUBSCRIPTIONS


def _auth_sagas():
    from services.auth.deletion import auth_sagas

    return auth_sagas()


def _files_subscriptions():
    from services.files.handlers import SUBSCRIPTIONS

    return SUBSCRIPTIONS


def _tasks_subscriptions():
    from services.tasks.handlers import SUBSCRIPTIONS

    return SUBSCRIPTIONS


def _tasks_sagas():
    from services.tasks.sagas import tasks_sagas

    return tasks_sagas()


def _with_database(name: str, settings, models, subscriptions, **hooks) -> Service:
    """A service owning the schema `name`, its tables in `models` and its migrations here."""
    return Service(
        name,
        settings,
        tables=models.messaging_tables,
        migrations=HERE / name / "migrations",
        subscriptions=subscriptions,
        **hooks,
    )


REGISTRY = ServiceRegistry(
    (
        _with_database("auth", AuthSettings, auth_models, _auth_subscriptions, sagas=_auth_sagas),
        _with_database("files", FilesSettings, files_models, _files_subscriptions),
        _with_database(
            "tasks", TasksSettings, tasks_models, _tasks_subscriptions, sagas=_tasks_sagas
        ),
        Service("gateway", GatewaySettings),
    )
)


def main(argv: list[str] | None = None) -> int:
    """The `dockyard` command (pyproject's console script): shared.cli with these services."""
    return cli.main(argv, registry=REGISTRY)


if __name__ == "__main__":
    sys.exit(main())
