"""The files service answers as its OpenAPI document says (schemathesis against the live app)."""

from __future__ import annotations

import uuid

import pytest

from services.files.app import create_app
from services.files.config import FilesSettings
from services.files.tests.conftest import User, mint_access_token, upload
from shared.conformance import check_document
from shared.testing import gateway_headers, peer_headers


@pytest.fixture(scope="module")
def conformance_app(test_env, jwks_url, tmp_path_factory):
    """A files app on local storage of its own."""
    storage = tmp_path_factory.mktemp("storage")
    app = create_app(FilesSettings(JWKS_URL=jwks_url, STORAGE_BACKEND="local", STORAGE_DIR=storage))
    yield app
    app.extensions["files"].engine.dispose()


def test_files_answers_as_documented(conformance_app, test_env, subtests):
    user_id = str(uuid.uuid4())
    token = mint_access_token(test_env.private_key_pem, user_id)
    user = User(user_id, {"Authorization": f"Bearer {token}"})
    client = conformance_app.test_client()

    def existing():
        stored = upload(client, user)
        assert stored.status_code == 201, stored.json
        return {"file_id": stored.json["id"]}

    def credentials(operation):
        # The internal endpoint serves the tasks service only; every other one the gateway only.
        if operation.path.startswith("/internal/"):
            return peer_headers("tasks", "files")
        return {**gateway_headers("files", "198.51.100.7"), **user.headers}

    check_document(conformance_app, credentials, subtests, existing)
