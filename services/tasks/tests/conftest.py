"""Fixtures of the tasks service's tests: the real auth service over HTTP, a tasks app, users."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from services.auth.app import create_app as create_auth_app
from services.auth.config import AuthSettings
from services.tasks.app import create_app
from services.tasks.config import TasksSettings
from shared.testing import ServerThread

#: Limits too high to interfere with tests that register many users.
GENEROUS_LIMITS = {
    "LOGIN_LIMIT_PER_IP": "10000/minute",
    "LOGIN_FREE_FAILURES": 10000,
    "REGISTER_LIMIT_PER_IP": "10000/minute",
}


@dataclass(frozen=True)
class User:
    """A registered user and the access token the real auth service issued them."""

    id: str
    email: str
    access_token: str

    @property
    def headers(self) -> dict[str, str]:
        """The Authorization header of this user."""
        return {"Authorization": f"Bearer {self.access_token}"}


@pytest.fixture(scope="session")
def auth_server(test_env) -> Iterator[ServerThread]:
    """The real auth service on a loopback port: it issues tokens and publishes its JWKS."""
    settings = AuthSettings(**GENEROUS_LIMITS, ARGON2_TIME_COST=1, ARGON2_MEMORY_KIB=1024)
    with ServerThread(create_auth_app(settings)) as server:
        yield server


@pytest.fixture(scope="session")
def make_app(auth_server):
    """Build a tasks app that verifies tokens with the auth server's JWKS; settings overridable."""

    def build(**overrides: Any):
        return create_app(
            TasksSettings(JWKS_URL=f"{auth_server.url}/v1/.well-known/jwks.json", **overrides)
        )

    return build


@pytest.fixture(scope="session")
def tasks_app(make_app):
    """One tasks app with the default policy, for the session."""
    return make_app()


@pytest.fixture
def client(tasks_app):
    """A test client of the tasks app."""
    return tasks_app.test_client()


@pytest.fixture(scope="session")
def register(auth_server):
    """Register a fresh user through the auth service; returns a User."""
    session = requests.Session()

    def register_user() -> User:
        email = f"tasks-{uuid.uuid4().hex[:12]}@example.com"
        response = session.post(
            f"{auth_server.url}/v1/auth/register",
            json={"email": email, "password": "correct horse battery"},
            timeout=10,
        )
        assert response.status_code == 201, response.text
        body = response.json()
        return User(id=body["user"]["id"], email=email, access_token=body["access_token"])

    return register_user


@pytest.fixture
def alice(register) -> User:
    """A fresh user."""
    return register()


@pytest.fixture
def bob(register) -> User:
    """Another fresh user."""
    return register()
