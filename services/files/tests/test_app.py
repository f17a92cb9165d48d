"""The files service starts, answers health and readiness, and publishes its OpenAPI document."""

from __future__ import annotations

from importlib.metadata import version

import pytest

from services.files.app import create_app
from services.files.config import FilesSettings
from shared.config import ConfigError


def test_health_readiness_and_openapi(test_env, tmp_path):
    client = create_app(FilesSettings(STORAGE_DIR=str(tmp_path))).test_client()
    assert client.get("/healthz").json == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.json
    assert ready.json["checks"] == ["broker", "database", "storage"]
    spec = client.get("/openapi.json").json
    assert spec["info"]["title"] == "Dockyard files"
    assert set(spec["paths"]) >= {
        "/v1/files",
        "/v1/files/{file_id}",
        "/v1/files/{file_id}/content",
        "/v1/plugins",
    }
    upload = spec["paths"]["/v1/files"]["post"]
    assert "multipart/form-data" in upload["requestBody"]["content"]
    assert b"http_requests_total" in client.get("/metrics").data


def test_unknown_routes_answer_in_the_shared_error_shape(test_env, tmp_path):
    response = create_app(FilesSettings(STORAGE_DIR=str(tmp_path))).test_client().get("/v1/nothing")
    assert response.status_code == 404
    assert response.json == {"status": 404, "code": "NOT_FOUND", "message": "Not found."}


def test_the_s3_backend_needs_a_bucket(test_env):
    with pytest.raises(ConfigError, match="FILES_S3_BUCKET"):
        FilesSettings({"FILES_STORAGE_BACKEND": "s3"})


def test_the_app_never_creates_a_missing_storage_directory_and_is_not_ready_without_it(
    test_env, tmp_path
):
    root = tmp_path / "unmounted"
    client = create_app(FilesSettings(STORAGE_DIR=str(root))).test_client()
    assert not root.exists()
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json["fields"] == {"storage": "StorageUnavailable"}
    assert not root.exists()
    root.mkdir()
    assert client.get("/readyz").status_code == 200


def test_plugins_lists_processors_and_storage_backends_as_the_openapi_says(test_env, tmp_path):
    client = create_app(FilesSettings(STORAGE_DIR=str(tmp_path))).test_client()
    response = client.get("/v1/plugins")
    assert response.status_code == 200
    spec = client.get("/openapi.json").json
    assert "200" in spec["paths"]["/v1/plugins"]["get"]["responses"]
    item = spec["components"]["schemas"]["Plugin"]["properties"]
    assert set(response.json) == set(spec["components"]["schemas"]["PluginList"]["properties"])
    listed = {(p["kind"], p["name"]): p for p in response.json["plugins"]}
    assert all(set(p) == set(item) for p in listed.values())
    assert {
        ("processor", "image"),
        ("processor", "tsv"),
        ("storage", "local"),
        ("storage", "s3"),
    } <= set(listed)
    assert listed[("processor", "tsv")] == {
        "kind": "processor",
        "name": "tsv",
        "distribution": "dockyard-example-plugins",
        "version": version("dockyard-example-plugins"),
        "status": "ok",
        "error": None,
    }
    assert listed[("storage", "local")]["version"] == version("dockyard")
    assert {kind for kind, _ in listed} == {"processor", "storage"}


def test_a_storage_backend_that_is_not_installed_fails_start_up(test_env, tmp_path):
    with pytest.raises(ConfigError, match="FILES_STORAGE_BACKEND names the storage 'ftp'"):
        create_app(FilesSettings(STORAGE_DIR=str(tmp_path), STORAGE_BACKEND="ftp"))
