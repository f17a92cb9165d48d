"""Error formatting: contract codes and extensions, generic internals, never a stack trace."""

from __future__ import annotations

import logging

import pytest
from graphql import GraphQLError

from services.gateway.errors import GatewayError, format_error
from services.gateway.tests.conftest import client_of, gql


def _located(original: Exception) -> GraphQLError:
    return GraphQLError(str(original), path=["me"], original_error=original)


def test_a_gateway_error_carries_its_code_fields_and_retry_after():
    error = GatewayError(
        "Invalid input.", code="BAD_USER_INPUT", fields={"email": "Not a valid email address."}
    )
    assert format_error(_located(error))["extensions"] == {
        "code": "BAD_USER_INPUT",
        "fields": {"email": "Not a valid email address."},
    }
    limited = GatewayError("Too many attempts.", code="RATE_LIMITED", retry_after=42)
    assert format_error(_located(limited))["extensions"] == {
        "code": "RATE_LIMITED",
        "retryAfter": 42,
    }


def test_a_code_outside_the_contract_becomes_internal_server_error():
    assert GatewayError("x", code="METHOD_NOT_ALLOWED").code == "INTERNAL_SERVER_ERROR"


@pytest.mark.parametrize("debug", [False, True])
def test_an_unexpected_exception_is_generic_even_in_debug_mode(debug):
    formatted = format_error(_located(RuntimeError("postgres://admin:pw@db/secret")), debug)
    assert formatted == {
        "message": "Internal server error.",
        "path": ["me"],
        "extensions": {"code": "INTERNAL_SERVER_ERROR"},
    }


def test_a_scalar_refusing_a_literal_is_bad_user_input(client):
    response = gql(client, 'mutation { uploadFile(file: "not a file") { id } }')
    (error,) = response.json()["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT"}
    assert "Upload" in error["message"]


def test_a_crashing_resolver_answers_a_generic_error_and_logs_the_traceback(
    client, fake_auth, monkeypatch, caplog
):
    def explode(_caller):
        raise KeyError("http://127.0.0.1:8001/v1/users/me internal detail")

    monkeypatch.setattr(fake_auth, "current_user", explode)
    with caplog.at_level(logging.INFO, logger="dockyard.gateway.errors"):
        response = gql(client, "{ me { id } }", headers={"Authorization": "Bearer t"})
    assert response.status_code == 200
    assert response.json()["errors"] == [
        {
            "message": "Internal server error.",
            "locations": [{"line": 1, "column": 3}],
            "path": ["me"],
            "extensions": {"code": "INTERNAL_SERVER_ERROR"},
        }
    ]
    text = response.text
    assert "internal detail" not in text and "Traceback" not in text and "8001" not in text
    (record,) = [r for r in caplog.records if r.name == "dockyard.gateway.errors"]
    assert record.levelno == logging.ERROR
    assert record.exc_info and isinstance(record.exc_info[1], KeyError)


def test_a_resolver_returning_garbage_is_internal_not_bad_user_input(client, fake_auth):
    fake_auth.current_user = lambda _caller: {"id": "7", "email": "a@b.c", "created_at": 12}
    response = gql(client, "{ me { createdAt } }", headers={"Authorization": "Bearer t"})
    assert response.json()["errors"][0]["extensions"] == {"code": "INTERNAL_SERVER_ERROR"}
    assert response.json()["errors"][0]["message"] == "Internal server error."


def test_a_failure_outside_any_resolver_is_a_generic_500(make_app, monkeypatch):
    app = make_app()

    def broken_rules(*_args):
        raise RuntimeError("validation rule bug with secrets")

    monkeypatch.setattr(app.graphql.http_handler, "validation_rules", broken_rules)
    response = gql(client_of(app), "{ me { id } }")
    assert response.status_code == 500
    assert response.json() == {
        "errors": [
            {"message": "Internal server error.", "extensions": {"code": "INTERNAL_SERVER_ERROR"}}
        ]
    }


def test_the_auth_service_error_shape_becomes_graphql_extensions(client, fake_auth):
    fake_auth.error = GatewayError(
        "Invalid input.", code="BAD_USER_INPUT", fields={"password": "Too short."}
    )
    response = gql(
        client, 'mutation { register(email: "a@example.com", password: "x") { accessToken } }'
    )
    (error,) = response.json()["errors"]
    assert error["message"] == "Invalid input."
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "fields": {"password": "Too short."}}
