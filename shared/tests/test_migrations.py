"""Every service's migrations produce exactly what its models declare."""

from __future__ import annotations

import pytest
from alembic import command

from services.registry import REGISTRY
from shared import dbadmin, migrations

SERVICES = [service.name for service in REGISTRY.with_database()]


@pytest.fixture(scope="module")
def fresh_database(test_env):
    """A database of its own: other tests add scratch tables to the run's shared one."""
    name = f"{test_env.database}_migrations"
    urls = {s: test_env.service_url(s).replace(test_env.database, name) for s in SERVICES}
    dbadmin.bootstrap(test_env.admin_url, urls)
    yield urls
    dbadmin.drop_database(test_env.admin_url, name)


@pytest.mark.parametrize("service", SERVICES)
def test_migrations_leave_nothing_for_autogenerate(fresh_database, service):
    config = migrations.alembic_config(REGISTRY.get(service).migrations, fresh_database[service])
    command.upgrade(config, "head")
    command.check(config)


@pytest.mark.parametrize("service", SERVICES)
def test_migrations_downgrade_to_nothing_and_back(fresh_database, service):
    config = migrations.alembic_config(REGISTRY.get(service).migrations, fresh_database[service])
    command.upgrade(config, "head")
    command.downgrade(config, "base")
    command.upgrade(config, "head")
    command.check(config)
