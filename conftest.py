"""Session-wide fixtures: one throwaway database and messaging namespace for the whole run."""

from __future__ import annotations

import pytest

from shared.testing import TestEnvironment


@pytest.fixture(scope="session")
def test_env():
    """Provision this run's database, roles, schemas, namespace and signing key."""
    with TestEnvironment() as environment:
        yield environment
