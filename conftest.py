"""Session-wide fixtures: one throwaway database and messaging namespace for the whole run."""

from __future__ import annotations

import pytest

from services.registry import REGISTRY
from shared.testing import TestEnvironment


@pytest.fixture(scope="session")
def test_env():
    """Provision this run's database, roles, schemas, namespace and signing key."""
    with TestEnvironment(REGISTRY) as environment:
        yield environment
