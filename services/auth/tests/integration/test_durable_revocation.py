"""A logged-out token stays refused after Redis restarts empty (issue 9: no persistence there)."""

from __future__ import annotations

import os
import shutil
import time

import pytest
import requests

from services.auth.api import limiter
from services.auth.app import create_app
from services.auth.config import AuthSettings
from services.auth.tests.conftest import GENEROUS_LIMITS, unique_email
from shared.auth import (
    JwksKeys,
    RevocationList,
    RevocationUnavailable,
    TokenInvalid,
    TokenVerifier,
)
from shared.processes import ManagedProcess
from shared.testing import ServerThread
from tests.conftest import free_port

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")


@pytest.fixture
def own_redis(auth_app):
    """A redis-server of this test's own on a free loopback port, without any persistence."""
    port = free_port()
    server = ManagedProcess(
        "redis-server",
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
         "no", "--dir", "/tmp"],
        env=dict(os.environ),
    )  # fmt: skip
    with server:
        server.wait_ready(log_line="Ready to accept connections")
        yield server, f"redis://127.0.0.1:{port}/0"
    # flask-limiter's one Limiter takes the storage of the app it was last set up with: give it
    # back the session's Redis before this one goes away.
    limiter.init_app(auth_app)


def restart(server: ManagedProcess) -> None:
    """Stop the redis-server and start it again: it comes back empty."""
    server.stop()
    server.start()
    deadline = time.monotonic() + 15
    while server.logs().count("Ready to accept connections") < 2:
        assert time.monotonic() < deadline, server.logs()
        time.sleep(0.05)


def accepted(verifier: TokenVerifier, token: str) -> bool:
    """Whether a verifier lets the token through (refused, or unable to tell, is False)."""
    try:
        verifier.verify(token)
    except (TokenInvalid, RevocationUnavailable):
        return False
    return True


def test_a_logged_out_token_stays_refused_after_redis_restarts_empty(own_redis, test_env):
    server, redis_url = own_redis
    app = create_app(AuthSettings(REDIS_URL=redis_url, **GENEROUS_LIMITS))
    with ServerThread(app) as auth:
        session = requests.Session()

        def register() -> dict:
            return session.post(
                f"{auth.url}/v1/auth/register",
                json={"email": unique_email(), "password": "rusty anchor at dawn"},
                timeout=10,
            ).json()

        def me(token: str) -> int:
            headers = {"Authorization": f"Bearer {token}"}
            return session.get(f"{auth.url}/v1/users/me", headers=headers, timeout=10).status_code

        leaving, staying = register(), register()
        # What files and tasks build: JWKS over HTTP and the same Redis.
        elsewhere = TokenVerifier(
            JwksKeys(f"{auth.url}/v1/.well-known/jwks.json"),
            RevocationList.from_url(redis_url, namespace=test_env.namespace),
            issuer="dockyard-auth",
            audience="dockyard",
        )
        headers = {"Authorization": f"Bearer {leaving['access_token']}"}
        assert session.post(f"{auth.url}/v1/auth/logout", headers=headers).status_code == 204
        assert me(leaving["access_token"]) == 401
        assert not accepted(elsewhere, leaving["access_token"])

        restart(server)

        # Never accepted again, not even in the moment before auth rebuilt the deny-list.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            assert me(leaving["access_token"]) in (401, 503)
            assert not accepted(elsewhere, leaving["access_token"])
            if accepted(elsewhere, staying["access_token"]):
                break
            time.sleep(0.05)
        else:
            pytest.fail("a live token was not accepted again within 5 s of the restart")
        assert me(staying["access_token"]) == 200
        assert me(leaving["access_token"]) == 401
        with pytest.raises(TokenInvalid, match="revoked"):
            elsewhere.verify(leaving["access_token"])
