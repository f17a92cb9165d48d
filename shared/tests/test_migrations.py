"""Every service's migrations produce exactly what its models declare."""

from __future__ import annotations

import pytest
from alembic import command

from shared import migrations

SERVICES = ["auth", "files", "tasks"]


@pytest.mark.parametrize("service", SERVICES)
def test_migrations_leave_nothing_for_autogenerate(test_env, service):
    config = migrations.alembic_config(f"services.{service}", test_env.service_url(service))
    command.check(config)
