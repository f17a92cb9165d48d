"""The auth service answers as its OpenAPI document says (schemathesis against the live app)."""

from __future__ import annotations

import uuid

import pytest

from services.auth.app import create_app
from services.auth.config import AuthSettings
from services.auth.tests.conftest import GENEROUS_LIMITS, bearer
from shared.conformance import check_document
from shared.testing import gateway_headers


@pytest.fixture(scope="module")
def conformance_app(test_env):
    """An auth app with cheap password hashing and limits too high to interfere."""
    return create_app(AuthSettings(**GENEROUS_LIMITS, ARGON2_TIME_COST=1, ARGON2_MEMORY_KIB=8192))


def test_auth_answers_as_documented(conformance_app, subtests):
    client = conformance_app.test_client()
    tokens = {}

    def credentials(operation):
        # A user of its own per operation: logout-all, password change and account deletion
        # end the sessions they are called with, which must not starve the other operations.
        if operation.label not in tokens:
            email = f"openapi-{uuid.uuid4().hex[:12]}@example.com"
            answer = client.post(
                "/v1/auth/register",
                json={"email": email, "password": "correct horse battery"},
                headers=gateway_headers("auth"),
            )
            assert answer.status_code == 201, answer.json
            tokens[operation.label] = answer.json["access_token"]
        return {**gateway_headers("auth", "198.51.100.7"), **bearer(tokens[operation.label])}

    check_document(conformance_app, credentials, subtests)
