"""The registry of services the kernel is handed: lookups, and refusals that name the problem."""

from __future__ import annotations

import pytest
from sqlalchemy import MetaData

from services.registry import REGISTRY
from shared.config import CommonSettings, ConfigError
from shared.outbox.tables import add_messaging_tables
from shared.registry import Service, ServiceRegistry


def test_services_with_a_database_are_those_with_tables_in_registry_order():
    assert [s.name for s in REGISTRY.with_database()] == ["auth", "files", "tasks"]
    assert REGISTRY.get("files").schema == "files"
    assert (REGISTRY.get("tasks").migrations / "env.py").exists()


def test_an_unknown_service_is_refused_naming_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown service 'nosuch' \(known: auth, files"):
        REGISTRY.get("nosuch")


def test_a_service_without_a_database_cannot_be_relayed_or_migrated():
    with pytest.raises(ConfigError, match="'gateway' has no database"):
        REGISTRY.with_database(["gateway"])


def test_names_may_not_repeat_and_tables_need_migrations():
    tables = add_messaging_tables(MetaData(schema="probe"))
    with pytest.raises(ValueError, match="repeat"):
        ServiceRegistry((Service("a", CommonSettings), Service("a", CommonSettings)))
    with pytest.raises(ValueError, match="no migrations"):
        ServiceRegistry((Service("probe", CommonSettings, tables=tables),))
