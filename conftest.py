"""Session-wide fixtures: one throwaway database and messaging namespace for the whole run.

Under pytest-xdist each worker is a session of its own, so each gets its own database and
namespace; what the workers share (the Docker engine's swarm) is undone once, by the
controller, after the last of them.
"""

from __future__ import annotations

import os

import pytest

from services.registry import REGISTRY
from shared.testing import TestEnvironment, leave_swarm_made_for_tests


@pytest.fixture(scope="session")
def test_env():
    """Provision this run's database, roles, schemas, namespace and signing key."""
    with TestEnvironment(REGISTRY) as environment:
        yield environment


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Leave the swarm the tests made, once: in the controller, or in the only process."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    leave_swarm_made_for_tests(session.config._tmp_path_factory.getbasetemp())
