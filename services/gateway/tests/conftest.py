"""Fixtures of the gateway's unit tests: the real schema and app over fake services."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from services.gateway.app import create_app
from services.gateway.clients import Caller, Clients, FilesClient, TasksClient
from services.gateway.config import GatewaySettings
from services.gateway.errors import GatewayError
from services.gateway.uploads import FileUpload
from shared.auth import Identity, TokenInvalid

USER = {"id": "7", "email": "ada@example.com", "created_at": "2026-11-22T05:00:00+00:00"}
TOKENS = {
    "access_token": "access-1",
    "refresh_token": "refresh-1",
    "token_type": "Bearer",
    "expires_in": 900,
    "user": USER,
}
TASK_ID = "3f2c1a4e-8d1b-4c55-9f0e-2b7d7c9e6a01"
TASK = {
    "id": TASK_ID,
    "name": "hello",
    "image": "busybox:1.36",
    "command": ["sh", "-c", "echo hello"],
    "env": [],
    "timeout_seconds": 3600,
    "cpu_limit": 1.0,
    "memory_limit_mb": 256,
    "max_retries": 0,
    "network": False,
    "status": "PENDING",
    "exit_code": None,
    "error_code": None,
    "error": None,
    "attempts": 0,
    "created_at": "2026-11-22T05:00:00+00:00",
    "queued_at": None,
    "started_at": None,
    "finished_at": None,
    "cancel_requested_at": None,
    "usage": None,
}

FILE_ID = "0b9a4c1e-5f2d-4e8a-9c3b-7d6e5f4a3b21"
FILE = {
    "id": FILE_ID,
    "owner_id": USER["id"],
    "filename": "notes.txt",
    "original_filename": "notes.txt",
    "content_type": "text/plain",
    "size": 6,
    "sha256": "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03",
    "status": "UPLOADED",
    "mime_type": None,
    "encoding": None,
    "line_count": None,
    "word_count": None,
    "error": None,
    "extra": {},
    "created_at": "2026-11-22T05:00:00.123456+00:00",
    "processed_at": None,
}
#: The bearer token FakeVerifier accepts.
GOOD_TOKEN = "good-token"


class FakeRedis:
    """The revocation list's Redis as the readiness probe sees it: always answering."""

    def ping(self) -> bool:
        """Pong."""
        return True


class FakeRevocations:
    """Stands in for the verifier's RevocationList."""

    client = FakeRedis()


class FakeVerifier:
    """Stands in for TokenVerifier: GOOD_TOKEN is USER's, anything else is invalid."""

    revocations = FakeRevocations()

    def verify(self, token: str) -> Identity:
        """USER's identity for GOOD_TOKEN; TokenInvalid otherwise."""
        if token != GOOD_TOKEN:
            raise TokenInvalid("not a token")
        return Identity(
            user_id=USER["id"], token_id="jti", family_id=None, expires_at=2**31, claims={}
        )


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

    async def register(self, caller: Caller, **kwargs: Any) -> dict[str, Any]:
        """Canned registration."""
        return self._answer("register", caller, TOKENS, **kwargs)

    async def login(self, caller: Caller, **kwargs: Any) -> dict[str, Any]:
        """Canned login."""
        return self._answer("login", caller, TOKENS, **kwargs)

    async def refresh(self, caller: Caller, **kwargs: Any) -> dict[str, Any]:
        """Canned rotation."""
        return self._answer("refresh", caller, TOKENS, **kwargs)

    async def logout(self, caller: Caller) -> None:
        """Canned logout."""
        return self._answer("logout", caller)

    async def logout_all(self, caller: Caller) -> None:
        """Canned logoutAll."""
        return self._answer("logout_all", caller)

    async def current_user(self, caller: Caller) -> dict[str, Any]:
        """Canned user."""
        return self._answer("current_user", caller, USER)

    async def check(self) -> None:
        """Always ready."""

    async def close(self) -> None:
        """Nothing to close."""


class FakeTasksClient:
    """Stands in for TasksClient: records every call, answers TASK (a page of it) or a set error."""

    service = "tasks"

    def __init__(self) -> None:
        self.calls: list[tuple[str, Caller, dict[str, Any]]] = []
        self.error: GatewayError | None = None

    def _answer(self, name: str, caller: Caller, answer: Any, **kwargs: Any) -> Any:
        self.calls.append((name, caller, kwargs))
        if self.error is not None:
            raise self.error
        return answer

    async def create_task(self, caller: Caller, **kwargs: Any) -> dict[str, Any]:
        """Canned creation."""
        return self._answer("create_task", caller, TASK, **kwargs)

    async def list_tasks(self, caller: Caller, **kwargs: Any) -> dict[str, Any]:
        """A canned page holding TASK."""
        page = {
            "edges": [{"cursor": "c1", "node": TASK}],
            "page_info": {"has_next_page": False, "end_cursor": "c1"},
            "total_count": 1,
        }
        return self._answer("list_tasks", caller, page, **kwargs)

    async def get_task(self, caller: Caller, **kwargs: Any) -> dict[str, Any] | None:
        """Canned task."""
        return self._answer("get_task", caller, TASK, **kwargs)

    async def cancel_task(self, caller: Caller, **kwargs: Any) -> dict[str, Any]:
        """Canned cancellation."""
        return self._answer("cancel_task", caller, {**TASK, "status": "CANCELLED"}, **kwargs)

    async def read_logs(self, caller: Caller, **kwargs: Any) -> dict[str, Any]:
        """Canned output."""
        logs = {"task_id": TASK_ID, "status": "PENDING", "stream": "both", "text": "hi\n"}
        return self._answer("read_logs", caller, {**logs, "truncated": False}, **kwargs)

    async def check(self) -> None:
        """Always ready."""

    async def close(self) -> None:
        """Nothing to close."""


class FakeFilesClient:
    """Stands in for FilesClient: records every call; an upload reads the whole file part."""

    service = "files"

    def __init__(self) -> None:
        self.calls: list[tuple[str, Caller, dict[str, Any]]] = []
        self.error: GatewayError | None = None
        #: The content of each upload, as the files service would have received it.
        self.uploaded: list[bytes] = []

    def _answer(self, name: str, caller: Caller, answer: Any, **kwargs: Any) -> Any:
        self.calls.append((name, caller, kwargs))
        if self.error is not None:
            raise self.error
        return answer

    async def upload_file(self, caller: Caller, *, upload: FileUpload) -> dict[str, Any]:
        """Read the file as the real client does, then answer FILE with its name and size."""
        content = b"".join([chunk async for chunk in upload.chunks()])
        self.uploaded.append(content)
        answer = {**FILE, "filename": upload.filename, "size": len(content)}
        answer["content_type"] = upload.content_type
        return self._answer("upload_file", caller, answer, upload=upload)

    async def list_files(self, caller: Caller, **kwargs: Any) -> dict[str, Any]:
        """A canned page holding FILE."""
        page = {
            "edges": [{"cursor": "file-cursor", "node": FILE}],
            "page_info": {"has_next_page": False, "end_cursor": "end"},
            "total_count": 1,
        }
        return self._answer("list_files", caller, page, **kwargs)

    async def get_file(self, caller: Caller, **kwargs: Any) -> dict[str, Any] | None:
        """Canned file."""
        return self._answer("get_file", caller, FILE, **kwargs)

    async def delete_file(self, caller: Caller, **kwargs: Any) -> None:
        """Canned deletion."""
        return self._answer("delete_file", caller, None, **kwargs)

    async def check(self) -> None:
        """Always ready."""

    async def close(self) -> None:
        """Nothing to close."""


def answering(value: Any):
    """A stand-in for a client method: an async function answering `value` to any call."""

    async def answer(*_args: Any, **_kwargs: Any) -> Any:
        return value

    return answer


def cache_hints(*hints: tuple[list, int]) -> dict[str, Any]:
    """The `extensions` of a response whose PRIVATE hints are these (path, maxAge) pairs."""
    entries = [{"path": path, "maxAge": max_age, "scope": "PRIVATE"} for path, max_age in hints]
    return {"cacheControl": {"version": 1, "hints": entries}}


def unit_settings(**overrides: Any) -> GatewaySettings:
    """Gateway settings from defaults only (never the shell's environment), plus overrides."""
    return GatewaySettings({}, **overrides)


def fake_clients(
    auth: FakeAuthClient,
    tasks: FakeTasksClient | None = None,
    files: FakeFilesClient | None = None,
) -> Clients:
    """Clients whose auth (and tasks and files, when given) are fakes; the rest point nowhere."""
    settings = unit_settings()
    return Clients(
        auth=auth,  # type: ignore[arg-type]
        files=files or FilesClient.from_settings(settings, "http://127.0.0.1:9"),  # type: ignore[arg-type]
        tasks=tasks or TasksClient.from_settings(settings, "http://127.0.0.1:9"),  # type: ignore[arg-type]
    )


@pytest.fixture
def fake_auth() -> FakeAuthClient:
    """The fake auth client the app under test calls."""
    return FakeAuthClient()


@pytest.fixture
def fake_tasks() -> FakeTasksClient:
    """The fake tasks client the app under test calls."""
    return FakeTasksClient()


@pytest.fixture
def fake_files() -> FakeFilesClient:
    """The fake files client the app under test calls."""
    return FakeFilesClient()


@pytest.fixture
def make_app(fake_auth, fake_tasks, fake_files):
    """Build a gateway app over the fake clients and verifier with some settings overridden."""

    def build(**overrides: Any):
        clients = fake_clients(fake_auth, fake_tasks, fake_files)
        return create_app(unit_settings(**overrides), clients=clients, verifier=FakeVerifier())

    return build


class _PoolsClosedPerCall:
    """The gateway app, its service connections closed after each call.

    A TestClient runs each call on an event loop of its own that ends with the call, so the
    pooled aiohttp session of that loop would otherwise be left unclosed.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        try:
            await self.app(scope, receive, send)
        finally:
            close = getattr(getattr(self.app, "gateway", None), "clients", None)
            if scope["type"] != "lifespan" and hasattr(close, "close"):
                await close.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)


def client_of(app: Any, *, address: str = "127.0.0.1") -> TestClient:
    """A test client of the ASGI app, its requests coming from `address`."""
    return TestClient(_PoolsClosedPerCall(app), client=(address, 50000))


@pytest.fixture
def client(make_app):
    """A test client of a gateway with default settings."""
    return client_of(make_app())


def gql(client, query: str, variables: dict | None = None, **kwargs: Any):
    """POST one operation as JSON; returns the response."""
    body: dict[str, Any] = {"query": query}
    if variables is not None:
        body["variables"] = variables
    return client.post("/graphql", json=body, **kwargs)
