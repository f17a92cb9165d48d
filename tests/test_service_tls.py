"""A REST service under the deployed gunicorn settings serves HTTPS; the gateway trusts its CA."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from services.gateway.clients import AuthClient, Caller
from services.gateway.config import GatewaySettings
from services.gateway.errors import GatewayError
from shared.processes import ManagedProcess
from shared.testing import self_signed_certificate
from tests.conftest import BIN, PASSWORD, REPO, free_port, unique_email


@pytest.fixture(scope="module")
def https_auth(test_env, tmp_path_factory):
    """The auth service under gunicorn with deploy/gunicorn.conf.py and a self-signed cert."""
    cert, key = self_signed_certificate(tmp_path_factory.mktemp("tls"))
    port = free_port()
    env = {**os.environ, "TLS_CERT_FILE": str(cert), "TLS_KEY_FILE": str(key)}
    argv = [
        BIN / "gunicorn", "--config", REPO / "deploy" / "gunicorn.conf.py",
        "--bind", f"127.0.0.1:{port}", "services.auth.wsgi:app",
    ]  # fmt: skip
    with ManagedProcess("auth-https", argv, env=env, cwd=REPO) as process:
        # gunicorn says "Listening" before its worker has loaded the app: wait for an answer.
        process.wait_ready(
            log_line=f"Listening at: https://127.0.0.1:{port}",
            until=lambda: _answers(f"https://127.0.0.1:{port}/healthz", cert),
            timeout=60,
        )
        yield f"https://127.0.0.1:{port}", cert


def _answers(url: str, cert: Path) -> bool:
    try:
        return requests.get(url, verify=str(cert), timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _auth_client(url: str, **settings: str) -> AuthClient:
    return AuthClient.from_settings(GatewaySettings(**settings), url)


def test_the_service_answers_https_checked_against_its_certificate(https_auth):
    url, cert = https_auth
    assert requests.get(f"{url}/healthz", verify=str(cert), timeout=5).json() == {"status": "ok"}
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{url}/healthz", timeout=5)
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(url.replace("https", "http") + "/healthz", timeout=5)


def test_the_gateway_calls_a_https_service_trusting_the_configured_ca(https_auth):
    url, cert = https_auth
    client = _auth_client(url, TLS_CA_FILE=str(cert))

    async def register() -> dict:
        try:
            return await client.register(Caller(), email=unique_email("tls"), password=PASSWORD)
        finally:
            await client.close()

    assert asyncio.run(register())["user"]["email"].startswith("tls-")


def test_the_gateway_refuses_a_service_certificate_it_does_not_trust(https_auth):
    url, _cert = https_auth
    client = _auth_client(url)

    async def register() -> None:
        try:
            await client.register(Caller(), email=unique_email("tls"), password=PASSWORD)
        finally:
            await client.close()

    with pytest.raises(GatewayError) as caught:
        asyncio.run(register())
    assert caught.value.code == "SERVICE_UNAVAILABLE"


def _wait_ready(url: str, **env: str) -> subprocess.CompletedProcess:
    argv = [sys.executable, "deploy/wait_ready.py", "--exit", "--deadline", "3", f"auth={url}"]
    return subprocess.run(
        argv,
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_readiness_probe_checks_a_https_service_against_the_configured_ca(https_auth):
    url, cert = https_auth
    assert _wait_ready(f"{url}/readyz", TLS_CA_FILE=str(cert)).returncode == 0
    refused = _wait_ready(f"{url}/readyz", TLS_CA_FILE="")
    assert refused.returncode != 0
    assert "CERTIFICATE_VERIFY_FAILED" in refused.stdout + refused.stderr
