"""The schema executed directly (no HTTP) over a fake auth client, and its scalars."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest
from ariadne import graphql

from services.gateway.clients import Caller
from services.gateway.context import GatewayContext
from services.gateway.executable import build_schema
from services.gateway.resolvers.scalars import (
    parse_bigint,
    parse_datetime,
    serialize_bigint,
    serialize_datetime,
)
from services.gateway.tests.conftest import USER, fake_clients

SCHEMA = build_schema()


def execute(fake_auth, query: str, variables: dict | None = None, token: str | None = None):
    """Run one operation against the schema with a fresh context."""
    clients = fake_clients(fake_auth)
    context = GatewayContext(caller=Caller(token=token), clients=clients, verifier=None)
    data = {"query": query, "variables": variables}
    return asyncio.run(graphql(SCHEMA, data, context_value=context))


def test_register_maps_the_auth_answer_onto_auth_payload(fake_auth):
    ok, result = execute(
        fake_auth,
        'mutation { register(email: "ada@example.com", password: "rusty anchor at dawn") '
        "{ accessToken refreshToken expiresIn user { id email createdAt } } }",
    )
    assert ok, result
    assert result["data"]["register"] == {
        "accessToken": "access-1",
        "refreshToken": "refresh-1",
        "expiresIn": 900,
        "user": {"id": "7", "email": USER["email"], "createdAt": USER["created_at"]},
    }
    assert fake_auth.calls[0][0] == "register"
    assert fake_auth.calls[0][2] == {"email": "ada@example.com", "password": "rusty anchor at dawn"}


def test_logout_answers_true_once_auth_accepted_it(fake_auth):
    ok, result = execute(fake_auth, "mutation { logout }", token="t")
    assert ok and result["data"] == {"logout": True}
    assert fake_auth.calls[0][1].token == "t"


def test_datetimes_serialize_with_a_timezone():
    naive = datetime(2026, 11, 22, 5, 0, 0)
    assert serialize_datetime(naive) == "2026-11-22T05:00:00+00:00"
    assert serialize_datetime("2026-11-22T05:00:00.5+00:00") == "2026-11-22T05:00:00.500000+00:00"
    cet = datetime(2026, 11, 22, 6, tzinfo=timezone(timedelta(hours=1)))
    assert serialize_datetime(cet) == "2026-11-22T06:00:00+01:00"
    assert parse_datetime("2026-11-22T05:00:00Z") == datetime(2026, 11, 22, 5, tzinfo=UTC)
    with pytest.raises(ValueError, match="timezone"):
        parse_datetime("2026-11-22T05:00:00")
    with pytest.raises(TypeError):
        serialize_datetime(12)


def test_bigints_go_beyond_32_bits_as_json_numbers():
    assert serialize_bigint(2**40) == 2**40
    assert serialize_bigint("1099511627776") == 2**40
    assert parse_bigint(2**40) == 2**40
    for bad in (True, 1.5):
        with pytest.raises(TypeError):
            serialize_bigint(bad)
    with pytest.raises(ValueError):
        parse_bigint("12")
