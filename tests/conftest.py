"""Cross-service fixtures: the real services over HTTP, their relays, a gateway in front."""

from __future__ import annotations

import os
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from starlette.testclient import TestClient

from services.auth.app import create_app as create_auth_app
from services.auth.config import AuthSettings

# The SMTP server and the auth mail processes, for the tests that read account mail.
from services.auth.tests.mailbox import mail_env, pipeline, smtp  # noqa: F401
from services.files.app import create_app as create_files_app
from services.files.config import FilesSettings
from services.files.tests.s3 import moto_server, s3_client, s3_settings
from services.gateway.app import create_app as create_gateway_app
from services.gateway.config import GatewaySettings
from services.gateway.tests.conftest import client_of
from services.tasks.app import create_app as create_tasks_app
from services.tasks.config import TasksSettings
from shared.processes import ManagedProcess
from shared.testing import ServerThread

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
#: Limits too high to interfere with tests that are not about them.
GENEROUS_LIMITS = {
    "LOGIN_LIMIT_PER_IP": "10000/minute",
    "LOGIN_FREE_FAILURES": 10000,
    "REGISTER_LIMIT_PER_IP": "10000/minute",
    "EMAIL_REQUEST_LIMIT_PER_IP": "10000/minute",
    "EMAIL_REQUEST_LIMIT_PER_ACCOUNT": "10000/minute",
}
PASSWORD = "correct horse battery"
AUTH_PAYLOAD = "accessToken refreshToken expiresIn user { id email emailVerified createdAt }"
REGISTER = (
    "mutation ($e: String!, $p: String!) "
    f"{{ register(email: $e, password: $p) {{ {AUTH_PAYLOAD} }} }}"
)


def unique_email(prefix: str = "gw") -> str:
    """An email no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def auth_service(**overrides: str) -> Iterator[ServerThread]:
    """The real auth service (this run's database and Redis) on a loopback port."""
    with ServerThread(create_auth_app(AuthSettings(**{**GENEROUS_LIMITS, **overrides}))) as server:
        yield server


def jwks_url(auth_url: str) -> str:
    """Where the auth service at `auth_url` publishes its signing keys."""
    return f"{auth_url}/v1/.well-known/jwks.json"


def gateway_settings(
    auth_url: str,
    *,
    tasks_url: str | None = None,
    files_url: str | None = None,
    **overrides: Any,
) -> GatewaySettings:
    """Gateway settings pointing at an auth service (and its JWKS), maybe tasks and files."""
    if tasks_url is not None:
        overrides["TASKS_SERVICE_URL"] = tasks_url
    if files_url is not None:
        overrides["FILES_SERVICE_URL"] = files_url
    return GatewaySettings(AUTH_SERVICE_URL=auth_url, JWKS_URL=jwks_url(auth_url), **overrides)


def gateway_env(
    auth_url: str, *, tasks_url: str | None = None, files_url: str | None = None, **extra: str
) -> dict[str, str]:
    """The environment of a gateway process in front of the given services."""
    env = {"AUTH_SERVICE_URL": auth_url, "AUTH_JWKS_URL": jwks_url(auth_url), **extra}
    if tasks_url is not None:
        env["TASKS_SERVICE_URL"] = tasks_url
    if files_url is not None:
        env["FILES_SERVICE_URL"] = files_url
    return env


@pytest.fixture(scope="session")
def auth_server(test_env) -> Iterator[ServerThread]:
    """One auth service for the session."""
    with auth_service() as server:
        yield server


@pytest.fixture(scope="session")
def tasks_app(auth_server):
    """The real tasks service's app (this run's database), trusting the session's auth."""
    return create_tasks_app(TasksSettings(JWKS_URL=jwks_url(auth_server.url)))


@pytest.fixture(scope="session")
def tasks_server(tasks_app) -> Iterator[ServerThread]:
    """The tasks app on a loopback port."""
    with ServerThread(tasks_app) as server:
        yield server


def files_settings(auth_url: str, storage_dir: Path, **overrides: Any) -> FilesSettings:
    """Files settings on the local backend in `storage_dir`, trusting the auth service's keys."""
    return FilesSettings(JWKS_URL=jwks_url(auth_url), STORAGE_DIR=str(storage_dir), **overrides)


@pytest.fixture(scope="session")
def files_app(auth_server, tmp_path_factory):
    """The real files service's app (this run's database, a local storage directory)."""
    app = create_files_app(files_settings(auth_server.url, tmp_path_factory.mktemp("files")))
    yield app
    app.extensions["files"].engine.dispose()


@pytest.fixture(scope="session")
def files_server(files_app) -> Iterator[ServerThread]:
    """The files app on a loopback port."""
    with ServerThread(files_app) as server:
        yield server


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's standalone S3-compatible server on a loopback port."""
    with moto_server() as endpoint:
        yield endpoint


def fresh_storage(request: pytest.FixtureRequest, backend: str) -> dict[str, str]:
    """Files settings of an empty store on `backend`: a new directory or a new bucket."""
    if backend == "s3":
        return s3_settings(request.getfixturevalue("s3_endpoint"))
    directory = request.getfixturevalue("tmp_path_factory").mktemp("files")
    return {"STORAGE_BACKEND": "local", "STORAGE_DIR": str(directory)}


#: The settings that say where the files service stores content (FilesSettings attributes).
STORAGE_SETTINGS = (
    "STORAGE_BACKEND",
    "STORAGE_DIR",
    "S3_ENDPOINT_URL",
    "S3_BUCKET",
    "S3_REGION",
    "S3_ACCESS_KEY_ID",
    "S3_SECRET_ACCESS_KEY",
)


@dataclass
class FilesBackend:
    """The files service on one storage backend, and that store seen from outside the service."""

    name: str
    app: Flask
    url: str

    @property
    def _settings(self) -> FilesSettings:
        return self.app.extensions["files"].settings

    def storage_env(self) -> dict[str, str]:
        """The store's settings as environment variables, for a worker or consumer process."""
        variables = FilesSettings.variables()
        return {
            variables[attr].name: str(getattr(self._settings, attr)) for attr in STORAGE_SETTINGS
        }

    def stored(self) -> list[str]:
        """Everything in the store, unfinished writes included, listed bypassing the service."""
        settings = self._settings
        if self.name == "s3":
            client = s3_client(settings.S3_ENDPOINT_URL)
            bucket = settings.S3_BUCKET
            objects = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            unfinished = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
            return sorted(
                [item["Key"] for page in objects for item in page.get("Contents", [])]
                + [f"{upload['Key']} (unfinished upload)" for upload in unfinished]
            )
        root = Path(settings.STORAGE_DIR)
        return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())

    def holds(self, key: str) -> bool:
        """Whether an object stored under `key` is in the store."""
        return any(entry.rsplit("/", 1)[-1] == key for entry in self.stored())

    def content(self, key: str) -> bytes:
        """The bytes stored under `key`, read without the service's code."""
        settings = self._settings
        if self.name == "s3":
            client = s3_client(settings.S3_ENDPOINT_URL)
            return client.get_object(Bucket=settings.S3_BUCKET, Key=key)["Body"].read()
        (path,) = Path(settings.STORAGE_DIR).rglob(key)
        return path.read_bytes()


@pytest.fixture(scope="module", params=["local", "s3"])
def files_backend(request, auth_server) -> Iterator[FilesBackend]:
    """The files service on each storage backend in turn: a module using it runs once per backend.

    The local one is the session's files service; the s3 one stores in a fresh bucket of moto.
    """
    if request.param == "local":
        files_app = request.getfixturevalue("files_app")
        yield FilesBackend("local", files_app, request.getfixturevalue("files_server").url)
        return
    settings = FilesSettings(JWKS_URL=jwks_url(auth_server.url), **fresh_storage(request, "s3"))
    app = create_files_app(settings)
    try:
        with ServerThread(app) as server:
            yield FilesBackend("s3", app, server.url)
    finally:
        app.extensions["files"].engine.dispose()


@pytest.fixture(scope="module")
def files_gateway(request, files_backend, auth_server, tasks_server) -> Iterator[str]:
    """A served gateway in front of `files_backend` (the session's own for the local backend)."""
    if files_backend.name == "local":
        yield request.getfixturevalue("served_gateway")
        return
    env = gateway_env(auth_server.url, tasks_url=tasks_server.url, files_url=files_backend.url)
    with uvicorn_gateway(env) as url:
        yield url


@pytest.fixture(scope="session")
def gateway_app(auth_server, tasks_server, files_server):
    """A gateway in front of the session's auth, tasks and files services."""
    return create_gateway_app(
        gateway_settings(auth_server.url, tasks_url=tasks_server.url, files_url=files_server.url)
    )


@pytest.fixture
def gateway(gateway_app):
    """A test client of the gateway."""
    return client_of(gateway_app)


class GraphQLClient:
    """Sends operations to a gateway test client the way Apollo Client does."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def post(self, query: str, variables: dict | None = None, *, token: str | None = None):
        """POST one operation; returns the test client's response."""
        headers = {"Accept": "application/graphql-response+json,application/json;q=0.9"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return self.client.post(
            "/graphql",
            json={"query": query, "variables": variables or {}},
            headers=headers,
        )

    def __call__(self, query: str, variables: dict | None = None, **kwargs: Any) -> dict:
        """POST one operation that must have executed (HTTP 200); returns the JSON body."""
        response = self.post(query, variables, **kwargs)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
def gql(gateway) -> GraphQLClient:
    """Operations against the session's gateway."""
    return GraphQLClient(gateway)


def register(gql: GraphQLClient, email: str | None = None) -> dict:
    """Register a fresh user through the gateway; returns the AuthPayload."""
    body = gql(REGISTER, {"e": email or unique_email(), "p": PASSWORD})
    assert "errors" not in body, body
    return body["data"]["register"]


def only_data(body: dict) -> Any:
    """The data of a response without errors (its extensions, cache hints, are not compared)."""
    assert set(body) <= {"data", "extensions"}, body
    return body["data"]


def error_codes(body: dict) -> list[str]:
    """The extensions.code of every error in a response body."""
    return [error["extensions"]["code"] for error in body.get("errors", [])]


@contextmanager
def background(name: str, argv: list[str], env: dict[str, str] | None = None) -> Iterator[None]:
    """A Dockyard process (relay, consumer, worker) running for the duration of the block."""
    with ManagedProcess(name, argv, env=env or dict(os.environ), cwd=REPO) as process:
        time.sleep(0.2)
        if not process.running:
            raise RuntimeError(f"{name} exited: {process.logs()[-2000:]}")
        yield


def relay(service: str):
    """`dockyard relay <service>` on this run's database and namespace."""
    return background(
        f"the {service} relay", [str(BIN / "dockyard"), "relay", service, "--poll-interval", "0.2"]
    )


# Module scope, not session: a parallel worker (pytest-xdist) may run the files and tasks
# services' own tests after this module, and those read their outboxes before any relay has.
@pytest.fixture(scope="module")
def relays(test_env) -> Iterator[None]:
    """The files and tasks relays, publishing their outboxes to this run's events exchange."""
    with relay("files"), relay("tasks"):
        yield


@pytest.fixture(scope="session")
def served_gateway(auth_server, tasks_server, files_server) -> Iterator[str]:
    """`uvicorn services.gateway.asgi:app` in front of the session's services; its base URL."""
    env = gateway_env(auth_server.url, tasks_url=tasks_server.url, files_url=files_server.url)
    with uvicorn_gateway(env) as url:
        yield url


@dataclass
class ServedGateway:
    """A gateway process: its public and internal base URLs."""

    url: str
    internal_url: str
    process: ManagedProcess


@contextmanager
def gateway_process(
    env: dict[str, str], *, scheme: str = "http", port: int | None = None
) -> Iterator[ServedGateway]:
    """`python -m services.gateway.server` as a subprocess on free loopback ports.

    Given `port`, the public listener takes that one instead, maybe beside another gateway
    (GATEWAY_REUSE_PORT); the internal port is always the process's own.
    """
    port, internal_port = port or free_port(), free_port()
    argv = [sys.executable, "-m", "services.gateway.server"]
    env = {
        **os.environ,
        "LOG_LEVEL": "WARNING",
        **env,
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port),
        "GATEWAY_INTERNAL_HOST": "127.0.0.1",
        "GATEWAY_INTERNAL_PORT": str(internal_port),
    }
    internal_url = f"http://127.0.0.1:{internal_port}"
    with ManagedProcess("gateway", argv, env=env, cwd=REPO) as process:
        process.wait_ready(url=f"{internal_url}/healthz", timeout=20)
        _wait_listening(port, process)
        yield ServedGateway(f"{scheme}://127.0.0.1:{port}", internal_url, process)


def _wait_listening(port: int, process: ManagedProcess, timeout: float = 20) -> None:
    # The public listener may be plain or TLS: a TCP connection is what both accept.
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if not process.running or time.monotonic() > deadline:
                raise RuntimeError(f"gateway not listening:\n{process.logs()[-2000:]}") from None
            time.sleep(0.05)


@contextmanager
def uvicorn_gateway(env: dict[str, str]) -> Iterator[str]:
    """The gateway served as in production (uvicorn, both listeners); its public base URL."""
    with gateway_process(env) as served:
        yield served.url
