"""Fixtures of the files service's tests: auth's JWKS over HTTP, an S3 server, apps per backend."""

from __future__ import annotations

import io
import time
import uuid
from dataclasses import dataclass

import jwt
import pytest
from sqlalchemy import text

from services.auth.app import create_app as create_auth_app
from services.auth.config import AuthSettings
from services.auth.keys import SigningKeys
from services.files.app import create_app
from services.files.config import FilesSettings
from services.files.tests.s3 import moto_server, s3_settings
from shared.testing import ServerThread


@pytest.fixture(scope="session")
def auth_server(test_env):
    """The real auth service over HTTP: it serves the JWKS and registers users."""
    settings = AuthSettings(
        REGISTER_LIMIT_PER_IP="10000/minute", ARGON2_TIME_COST=1, ARGON2_MEMORY_KIB=8192
    )
    with ServerThread(create_auth_app(settings)) as server:
        yield server


@pytest.fixture(scope="session")
def jwks_url(auth_server) -> str:
    """Where the files service fetches the auth service's public keys."""
    return f"{auth_server.url}/v1/.well-known/jwks.json"


@pytest.fixture(scope="session")
def s3_endpoint():
    """moto's standalone S3-compatible server on a free loopback port."""
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture(params=["local", "s3"])
def storage_settings(request, tmp_path) -> dict[str, str]:
    """Settings of one storage backend, empty for this test (the suite runs once per backend)."""
    if request.param == "s3":
        return s3_settings(request.getfixturevalue("s3_endpoint"))
    # Provisioned here as `make up` does: the service never creates its storage directory.
    directory = tmp_path / "storage"
    directory.mkdir()
    return {"STORAGE_BACKEND": "local", "STORAGE_DIR": str(directory)}


@pytest.fixture
def make_app(test_env, jwks_url, storage_settings):
    """Build a files app on this test's storage, with some settings overridden."""
    apps = []

    def build(**overrides):
        settings = FilesSettings(JWKS_URL=jwks_url, **{**storage_settings, **overrides})
        app = create_app(settings)
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.extensions["files"].engine.dispose()


@pytest.fixture
def app(make_app):
    """A files app with the default limits."""
    return make_app()


@pytest.fixture
def client(app):
    """A test client of the files app."""
    return app.test_client()


@dataclass(frozen=True)
class User:
    """A user id and the Authorization header of a valid access token for it."""

    id: str
    headers: dict[str, str]


def mint_access_token(private_key_pem: str, user_id: str, *, ttl: int = 600) -> str:
    """An access token signed like the auth service signs them."""
    now = int(time.time())
    claims = {
        "sub": user_id,
        "jti": str(uuid.uuid4()),
        "type": "access",
        "iat": now,
        "exp": now + ttl,
        "iss": "dockyard-auth",
        "aud": "dockyard",
    }
    kid = SigningKeys.load(private_key_pem, []).kid
    return jwt.encode(claims, private_key_pem, algorithm="RS256", headers={"kid": kid})


@pytest.fixture
def make_user(test_env):
    """Mint a token for a brand-new user id."""

    def build() -> User:
        user_id = str(uuid.uuid4())
        token = mint_access_token(test_env.private_key_pem, user_id)
        return User(id=user_id, headers={"Authorization": f"Bearer {token}"})

    return build


@pytest.fixture
def user(make_user) -> User:
    """A user with a valid access token."""
    return make_user()


def upload(
    client,
    user: User,
    content: bytes = b"hello world\n",
    filename: str = "hello.txt",
    content_type: str = "text/plain",
):
    """POST a file as multipart/form-data, the way a browser form does."""
    return client.post(
        "/v1/files",
        data={"file": (io.BytesIO(content), filename, content_type)},
        headers=user.headers,
        content_type="multipart/form-data",
    )


def multipart_body(content: bytes, filename: str = "data.bin", boundary: str = "b0undary"):
    """A complete multipart/form-data body and its Content-Type, built by hand."""
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    return head + content + tail, f"multipart/form-data; boundary={boundary}"


def stored_keys(app) -> list[str]:
    """Every object key in the app's storage backend."""
    return app.extensions["files"].storage.keys()


def file_rows(app, owner_id: str) -> int:
    """How many file rows the owner has."""
    with app.extensions["files"].engine.connect() as conn:
        return conn.execute(
            text("SELECT count(*) FROM files WHERE owner_id = :owner"), {"owner": owner_id}
        ).scalar_one()


def used_bytes(app, owner_id: str) -> int:
    """The owner's storage usage as the quota sees it."""
    with app.extensions["files"].engine.connect() as conn:
        used = conn.execute(
            text("SELECT used_bytes FROM storage_accounts WHERE owner_id = :owner"),
            {"owner": owner_id},
        ).scalar()
    return used or 0
