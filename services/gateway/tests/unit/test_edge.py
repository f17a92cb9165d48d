"""The edge middleware on its own: block list, body deadline, per-address cap, headers, settings."""

from __future__ import annotations

import asyncio
import base64
import hashlib

import pytest

from services.gateway.blocklist import BlockList
from services.gateway.config import GatewaySettings
from services.gateway.guards import BodyDeadline, ClientConnectionLimit
from services.gateway.security_headers import explorer_policy
from services.gateway.tests.conftest import client_of, gql
from shared.config import ConfigError


def _blocklist(*entries: str) -> BlockList:
    return BlockList(entries, client=None, namespace="ns", refresh_seconds=60)


def test_the_block_list_matches_addresses_ranges_and_ipv4_mapped_ipv6():
    blocklist = _blocklist("203.0.113.7", "198.51.100.0/24", "2001:db8::/32")
    assert blocklist.blocks("203.0.113.7")
    assert blocklist.blocks("198.51.100.200")
    assert blocklist.blocks("::ffff:198.51.100.1")
    assert blocklist.blocks("2001:db8::1")
    assert not blocklist.blocks("203.0.113.8")
    assert not blocklist.blocks("testclient")
    assert not blocklist.blocks(None)


def test_a_blocked_address_gets_403_and_others_are_served(make_app):
    app = make_app(BLOCKED_IPS=["10.0.0.0/8"])
    refused = gql(client_of(app, address="10.1.2.3"), "{ __typename }")
    assert refused.status_code == 403
    assert refused.json()["code"] == "FORBIDDEN"
    assert refused.headers["X-Content-Type-Options"] == "nosniff"
    assert gql(client_of(app, address="192.0.2.1"), "{ __typename }").status_code == 200
    metrics = client_of(app.operations).get("/metrics").text
    assert 'gateway_blocked_requests_total{type="http"} 1.0' in metrics


def test_the_explorer_policy_allows_exactly_its_inline_scripts_by_hash():
    html = "<script type='importmap'>{}</script><script type=module>go()</script><script></script>"
    policy = explorer_policy(html)
    for body in ("{}", "go()"):
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in policy
    assert "'unsafe-inline'" not in policy.split("script-src", 1)[1].split(";", 1)[0]
    assert "frame-ancestors 'none'" in policy


def test_json_answers_get_the_strict_policy_and_no_hsts_over_http(client):
    response = gql(client, "{ __typename }")
    assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "Strict-Transport-Security" not in response.headers


async def _run(app, scope: dict, chunks: list[bytes | None]) -> list[dict]:
    """Call an ASGI app; None in `chunks` means the client stops sending."""
    sent: list[dict] = []
    pending = list(chunks)

    async def receive() -> dict:
        chunk = pending.pop(0) if pending else None
        if chunk is None:
            await asyncio.sleep(3600)
        return {"type": "http.request", "body": chunk, "more_body": bool(pending)}

    async def send(message: dict) -> None:
        sent.append(message)

    await asyncio.wait_for(app(scope, receive, send), 5)
    return sent


def _scope(**extra) -> dict:
    return {
        "type": "http",
        "method": "POST",
        "path": "/graphql",
        "headers": [],
        "client": ("192.0.2.1", 5000),
        **extra,
    }


async def _echo_body(scope, receive, send) -> None:
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            await send({"type": "http.response.start", "status": 400, "headers": []})
            await send({"type": "http.response.body", "body": b"incomplete"})
            return
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def test_a_stalled_body_is_answered_408_with_connection_close():
    app = BodyDeadline(_echo_body, read_timeout=0.1, body_timeout=10)
    sent = asyncio.run(_run(app, _scope(), [b'{"query":', None]))
    assert sent[0]["status"] == 408
    assert (b"connection", b"close") in sent[0]["headers"]
    assert len(sent) == 2  # the app's own answer never goes out


def test_a_body_in_time_passes_untouched():
    app = BodyDeadline(_echo_body, read_timeout=1, body_timeout=1)
    sent = asyncio.run(_run(app, _scope(), [b"ab", b"cd"]))
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"abcd"


def test_the_per_address_cap_answers_429_beyond_it_and_frees_places_when_done():
    release = asyncio.Event()

    async def slow(scope, receive, send) -> None:
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def scenario() -> tuple[list[dict], list[dict], list[dict]]:
        app = ClientConnectionLimit(slow, limit=2)
        held = [asyncio.create_task(_run(app, _scope(), [b""])) for _ in range(2)]
        await asyncio.sleep(0.05)
        over = await _run(app, _scope(), [b""])
        other = asyncio.create_task(_run(app, _scope(client=("192.0.2.2", 1)), [b""]))
        release.set()
        await asyncio.gather(*held, other)
        again = await _run(app, _scope(), [b""])
        return over, other.result(), again

    over, other, again = asyncio.run(scenario())
    assert over[0]["status"] == 429
    assert other[0]["status"] == 200 and again[0]["status"] == 200


def test_tls_needs_both_files_and_forwarded_proxies_must_be_addresses():
    with pytest.raises(ConfigError, match="set together"):
        GatewaySettings({"GATEWAY_TLS_CERTFILE": "/etc/gateway.crt"})
    with pytest.raises(ConfigError, match="GATEWAY_FORWARDED_ALLOW_IPS"):
        GatewaySettings({"GATEWAY_FORWARDED_ALLOW_IPS": "proxy.internal"})
    settings = GatewaySettings({"GATEWAY_FORWARDED_ALLOW_IPS": "10.0.0.1, 172.16.0.0/12"})
    assert settings.FORWARDED_ALLOW_IPS == ["10.0.0.1/32", "172.16.0.0/12"]
