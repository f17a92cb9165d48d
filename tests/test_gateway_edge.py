"""The gateway's edge, served as in production (`python -m services.gateway.server`, uvicorn).

Forwarded addresses, slow clients, the per-address cap, security headers, the internal
listener, the block list and TLS, each tested against a real gateway process on loopback
(raw sockets where the finding is about the server) in front of the real auth service.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import requests

from shared.testing import self_signed_certificate
from tests.conftest import (
    PASSWORD,
    REGISTER,
    REPO,
    auth_service,
    gateway_env,
    gateway_process,
    unique_email,
)

#: Rapid timeouts so a slow client's fate is known within seconds.
SLOW_CLIENT_ENV = {
    "GATEWAY_HEADER_TIMEOUT": "1",
    "GATEWAY_BODY_READ_TIMEOUT": "1",
    "GATEWAY_BODY_TIMEOUT": "2.5",
}
TYPENAME = b'{"query": "{ __typename }"}'


def _register(url: str, *, forwarded_for: str | None = None) -> requests.Response:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    return requests.post(
        f"{url}/graphql",
        json={"query": REGISTER, "variables": {"e": unique_email("edge"), "p": PASSWORD}},
        headers=headers,
        timeout=10,
    )


def _codes(response: requests.Response) -> list[str]:
    return [error["extensions"]["code"] for error in response.json().get("errors", [])]


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


@pytest.fixture(scope="module")
def strict_auth(test_env) -> Iterator[str]:
    """An auth service allowing two registrations a minute per address."""
    with auth_service(REGISTER_LIMIT_PER_IP="2/minute") as server:
        yield server.url


# -- Forwarded addresses -----------------------------------------------------------------


def test_a_forwarded_address_from_an_unconfigured_peer_does_not_dodge_the_rate_limit(
    strict_auth,
):
    with gateway_process(gateway_env(strict_auth)) as gateway:
        for _ in range(2):
            assert _codes(_register(gateway.url)) == []
        assert _codes(_register(gateway.url)) == ["RATE_LIMITED"]
        # The finding: the same request naming another address created the account.
        dodge = _register(gateway.url, forwarded_for="203.0.113.10")
        assert _codes(dodge) == ["RATE_LIMITED"]


def test_a_configured_proxy_forwards_the_client_address(strict_auth):
    env = gateway_env(strict_auth, GATEWAY_FORWARDED_ALLOW_IPS="127.0.0.1")
    with gateway_process(env) as gateway:
        for _ in range(2):
            assert _codes(_register(gateway.url, forwarded_for="198.51.100.20")) == []
        assert _codes(_register(gateway.url, forwarded_for="198.51.100.20")) == ["RATE_LIMITED"]
        # Another client behind the proxy has a bucket of its own.
        assert _codes(_register(gateway.url, forwarded_for="198.51.100.21")) == []


# -- Slow clients --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def slow_client_gateway(auth_server) -> Iterator[str]:
    """A gateway with one-second header and body read timeouts."""
    with gateway_process(gateway_env(auth_server.url, **SLOW_CLIENT_ENV)) as gateway:
        yield gateway.url


def _open(url: str, data: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", _port(url)), timeout=10)
    sock.sendall(data)
    return sock


def _read_until_closed(sock: socket.socket) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and how long that took."""
    started = time.monotonic()
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except TimeoutError:
        pytest.fail(f"still open after {time.monotonic() - started:.1f} s: {received!r}")
    finally:
        sock.close()
    return received, time.monotonic() - started


def _post_head(length: int) -> bytes:
    return (
        b"POST /graphql HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(length).encode() + b"\r\n\r\n"
    )


def test_a_body_that_stops_arriving_is_answered_408_and_closed(slow_client_gateway):
    # The finding: Content-Length 40 and 9 bytes held the connection for 95 s.
    sock = _open(slow_client_gateway, _post_head(40) + b'{"query":')
    response, elapsed = _read_until_closed(sock)
    assert response.startswith(b"HTTP/1.1 408 "), response
    assert b'"code": "REQUEST_TIMEOUT"' in response
    assert elapsed < 4


def test_a_body_sent_a_byte_at_a_time_is_cut_off_at_the_whole_body_deadline(
    slow_client_gateway,
):
    body = b'{"query": "{ __typename }", "variables": {}}' + b" " * 60
    sock = _open(slow_client_gateway, _post_head(len(body)))
    started = time.monotonic()
    try:
        for byte in body:
            sock.sendall(bytes([byte]))  # each in time for the read timeout, never done
            time.sleep(0.5)
    except OSError:
        pass  # closed under us: the deadline passed
    response, _ = _read_until_closed(sock)
    assert response.startswith(b"HTTP/1.1 408 "), response
    assert time.monotonic() - started < 6


def test_headers_that_never_finish_are_answered_408_and_closed(slow_client_gateway):
    sock = _open(slow_client_gateway, b"POST /graphql HTTP/1.1\r\nHost: gate")
    response, elapsed = _read_until_closed(sock)
    assert response.startswith(b"HTTP/1.1 408 "), response
    assert elapsed < 4


def test_a_client_over_its_connection_cap_gets_429_while_others_are_served(auth_server):
    env = gateway_env(auth_server.url, GATEWAY_MAX_CONNECTIONS_PER_CLIENT="2")
    with gateway_process(env) as gateway:
        _hold_two_and_try_a_third(gateway.url)


def _hold_two_and_try_a_third(url: str) -> None:
    held = [_open(url, _post_head(40) + b"{") for _ in range(2)]
    time.sleep(0.3)  # both are in the app, waiting for their bodies
    try:
        third = requests.post(
            f"{url}/graphql",
            data=TYPENAME,
            timeout=5,
            headers={"Content-Type": "application/json"},
        )
        assert third.status_code == 429
        assert third.json()["code"] == "RATE_LIMITED"
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.3)
    again = requests.post(
        f"{url}/graphql",
        data=TYPENAME,
        timeout=5,
        headers={"Content-Type": "application/json"},
    )
    assert again.status_code == 200, again.text


# -- Security headers and the internal listener ------------------------------------------


@pytest.fixture(scope="module")
def served(auth_server):
    """A gateway with default settings."""
    with gateway_process(gateway_env(auth_server.url)) as gateway:
        yield gateway


def _assert_hardened(response: requests.Response) -> None:
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_every_response_carries_the_security_headers_and_no_hsts_over_http(served):
    responses = [
        requests.post(f"{served.url}/graphql", json={"query": "{ __typename }"}, timeout=5),
        requests.post(
            f"{served.url}/graphql",
            data="{oops",
            timeout=5,
            headers={"Content-Type": "application/json"},
        ),
        requests.get(f"{served.url}/nope", timeout=5),
        requests.get(f"{served.url}/healthz", timeout=5),
    ]
    assert [r.status_code for r in responses] == [200, 400, 404, 200]
    for response in responses:
        _assert_hardened(response)
        assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
        assert "Strict-Transport-Security" not in response.headers


def test_graphiql_gets_a_policy_naming_its_own_scripts(served):
    page = requests.get(f"{served.url}/graphql", headers={"Accept": "text/html"}, timeout=5)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    _assert_hardened(page)
    policy = page.headers["Content-Security-Policy"]
    assert "script-src https://esm.sh data: 'sha256-" in policy
    assert "unsafe-eval" not in policy and "script-src https://esm.sh 'unsafe-inline'" not in policy


def test_operational_endpoints_answer_on_the_internal_listener_only(served):
    for path in ("/metrics", "/readyz", "/docs", "/openapi.json"):
        assert requests.get(f"{served.url}{path}", timeout=5).status_code == 404, path
    assert requests.get(f"{served.url}/healthz", timeout=5).json() == {"status": "ok"}
    assert requests.get(f"{served.internal_url}/readyz", timeout=5).json()["status"] == "ready"
    metrics = requests.get(f"{served.internal_url}/metrics", timeout=5)
    assert metrics.status_code == 200 and "http_requests_total" in metrics.text
    assert requests.post(f"{served.internal_url}/graphql", json={}, timeout=5).status_code == 404


# -- The block list --------------------------------------------------------------------------


def _blocklist(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "services.gateway.blocklist", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_blocked_addresses_and_ranges_are_refused_before_any_work_and_counted(auth_server):
    env = gateway_env(
        auth_server.url,
        GATEWAY_BLOCKED_IPS="192.0.2.0/24",
        GATEWAY_BLOCKLIST_REFRESH_SECONDS="0.2",
        # Lets the test speak for any address, as a proxy in front would.
        GATEWAY_FORWARDED_ALLOW_IPS="127.0.0.1",
    )

    def status_from(address: str) -> int:
        response = requests.post(
            f"{gateway.url}/graphql",
            json={"query": "{ __typename }"},
            headers={"X-Forwarded-For": address},
            timeout=5,
        )
        if response.status_code == 403:
            assert response.json() == {
                "status": 403,
                "code": "FORBIDDEN",
                "message": "Your address is blocked.",
            }
            _assert_hardened(response)
        return response.status_code

    with gateway_process(env) as gateway:
        assert status_from("192.0.2.77") == 403
        assert status_from("198.51.100.9") == 200
        try:
            assert "add: 198.51.100.0/28" in _blocklist("add", "198.51.100.0/28")
            assert "198.51.100.0/28" in _blocklist("list")
            time.sleep(0.6)
            assert status_from("198.51.100.9") == 403
            assert status_from("198.51.100.17") == 200
        finally:
            _blocklist("remove", "198.51.100.0/28")
        time.sleep(0.6)
        assert status_from("198.51.100.9") == 200
        metrics = requests.get(f"{gateway.internal_url}/metrics", timeout=5).text
        assert 'gateway_blocked_requests_total{type="http"} 2.0' in metrics


def test_the_blocklist_command_refuses_what_is_not_an_address():
    done = subprocess.run(
        [sys.executable, "-m", "services.gateway.blocklist", "add", "not-an-address"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "not an address or CIDR range" in done.stderr

    # -- TLS -------------------------------------------------------------------------------------


def test_the_gateway_serves_https_from_configured_files_with_hsts(auth_server, tmp_path):
    certfile, keyfile = self_signed_certificate(tmp_path)
    env = gateway_env(
        auth_server.url, GATEWAY_TLS_CERTFILE=str(certfile), GATEWAY_TLS_KEYFILE=str(keyfile)
    )
    with gateway_process(env, scheme="https") as gateway:
        assert gateway.url.startswith("https://")
        response = requests.post(
            f"{gateway.url}/graphql",
            json={"query": "{ __typename }"},
            verify=str(certfile),
            timeout=5,
        )
        assert response.json() == {"data": {"__typename": "Query"}}
        assert response.headers["Strict-Transport-Security"].startswith("max-age=")
        _assert_hardened(response)
        with pytest.raises(requests.ConnectionError):
            requests.get(gateway.url.replace("https://", "http://") + "/healthz", timeout=5)
