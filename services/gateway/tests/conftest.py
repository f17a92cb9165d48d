"""Fixtures of the gateway's unit tests: the real schema and app over a fake auth client."""

from __future__ import annotations

from typing import Any

import pytest

from services.gateway.app import create_app
from services.gateway.clients import Caller, Clients, FilesClient, TasksClient
from services.gateway.config import GatewaySettings
from services.gateway.errors import GatewayError

USER = {"id": "7", "email": "ada@example.com", "created_at": "2026-11-22T05:00:00+00:00"}
TOKENS = {
    "access_token": "access-1",
    "refresh_token": "refresh-1",
    "token_type": "Bearer",
    "expires_in": 900,
    "user": USER,
}


class FakeAuthClient:
    """Stands in for AuthClient: records every call, answers canned data or a set error."""

    service = "auth"

    def __init__(self) -> None:
        self.calls: list[tuple[str, Caller, dict[str, Any]]] = []
        self.error: GatewayError | None = None

    def _answer(self, name: str, caller: Caller, answer: Any = None, **kwargs: Any) -> Any:
        self.calls.append((name, caller, kwargs))
        if self.error is not None:
            raise self.error
        return answer

    def register(self, caller: Caller, **kwargs: Any) -> dict[str, Any]:
        """Canned registration."""
        return self._answer("register", caller, TOKENS, **kwargs)

    def login(self, caller: Caller, **kwargs: Any) -> dict[str, Any]:
        """Canned login."""
        return self._answer("login", caller, TOKENS, **kwargs)

    def refresh(self, caller: Caller, **kwargs: Any) -> dict[str, Any]:
        """Canned rotation."""
        return self._answer("refresh", caller, TOKENS, **kwargs)

    def logout(self, caller: Caller) -> None:
        """Canned logout."""
        return self._answer("logout", caller)

    def current_user(self, caller: Caller) -> dict[str, Any]:
        """Canned user."""
        return self._answer("current_user", caller, USER)

    def check(self) -> None:
        """Always ready."""

    def close(self) -> None:
        """Nothing to close."""


def unit_settings(**overrides: Any) -> GatewaySettings:
    """Gateway settings from defaults only (never the shell's environment), plus overrides."""
    return GatewaySettings({}, **overrides)


def fake_clients(auth: FakeAuthClient) -> Clients:
    """Clients whose auth is the fake; files and tasks point at a closed port."""
    settings = unit_settings()
    return Clients(
        auth=auth,  # type: ignore[arg-type]
        files=FilesClient.from_settings(settings, "http://127.0.0.1:9"),
        tasks=TasksClient.from_settings(settings, "http://127.0.0.1:9"),
    )


@pytest.fixture
def fake_auth() -> FakeAuthClient:
    """The fake auth client the app under test calls."""
    return FakeAuthClient()


@pytest.fixture
def make_app(fake_auth):
    """Build a gateway app over the fake auth client with some settings overridden."""

    def build(**overrides: Any):
        return create_app(unit_settings(**overrides), clients=fake_clients(fake_auth))

    return build


@pytest.fixture
def client(make_app):
    """A test client of a gateway with default settings."""
    return make_app().test_client()


def gql(client, query: str, variables: dict | None = None, **kwargs: Any):
    """POST one operation as JSON; returns the response."""
    body: dict[str, Any] = {"query": query}
    if variables is not None:
        body["variables"] = variables
    return client.post("/graphql", json=body, **kwargs)
