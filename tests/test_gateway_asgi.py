"""The real ASGI app under uvicorn: HTTP and WebSocket /graphql both served by Ariadne."""

from __future__ import annotations

import asyncio
import json

import pytest
import requests
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.conftest import PASSWORD, only_data, unique_email, uvicorn_gateway

PROTOCOL = "graphql-transport-ws"


@pytest.fixture(scope="module")
def served(auth_server):
    """`uvicorn services.gateway.asgi:app` in front of the session's auth service."""
    env = {
        "AUTH_SERVICE_URL": auth_server.url,
        "AUTH_JWKS_URL": f"{auth_server.url}/v1/.well-known/jwks.json",
    }
    with uvicorn_gateway(env) as url:
        yield url


def _post(url: str, query: str, variables: dict | None = None, token: str | None = None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.post(
        f"{url}/graphql",
        json={"query": query, "variables": variables or {}},
        headers=headers,
        timeout=10,
    )


@pytest.fixture(scope="module")
def tokens(served):
    """A user registered through the served gateway."""
    response = _post(
        served,
        "mutation ($e: String!, $p: String!) { register(email: $e, password: $p) "
        "{ accessToken refreshToken user { email } } }",
        {"e": unique_email("asgi"), "p": PASSWORD},
    )
    assert response.status_code == 200
    return response.json()["data"]["register"]


def _ws_url(http_url: str, path: str = "/graphql") -> str:
    return http_url.replace("http://", "ws://") + path


async def _close_code_after_init(url: str, payload) -> int:
    async with connect(url, subprotocols=[PROTOCOL]) as ws:
        assert ws.subprotocol == PROTOCOL
        await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), timeout=5)
        return closed.value.rcvd.code


def test_http_post_is_executed_through_uvicorn(served, tokens):
    response = _post(served, "{ me { email } }", token=tokens["accessToken"])
    assert response.status_code == 200
    assert only_data(response.json()) == {"me": {"email": tokens["user"]["email"]}}
    assert response.headers["Cache-Control"] == "private, max-age=60"
    assert response.headers["X-Request-ID"]
    assert requests.get(f"{served}/healthz", timeout=5).json() == {"status": "ok"}


def test_http_errors_keep_their_shape_through_uvicorn(served):
    response = requests.post(
        f"{served}/graphql", data="{oops", headers={"Content-Type": "application/json"}, timeout=5
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


@pytest.mark.parametrize(
    "payload",
    [
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": "not-bearer"},
        {},
        None,
        "Bearer x",
    ],
)
def test_a_websocket_connection_init_without_a_valid_token_closes_with_4401(served, payload):
    assert asyncio.run(_close_code_after_init(_ws_url(served), payload)) == 4401


def test_a_websocket_with_a_logged_out_token_closes_with_4401(served):
    registered = _post(
        served,
        "mutation ($e: String!, $p: String!) { register(email: $e, password: $p) { accessToken } }",
        {"e": unique_email("ws-out"), "p": PASSWORD},
    ).json()["data"]["register"]
    assert _post(served, "mutation { logout }", token=registered["accessToken"]).json() == {
        "data": {"logout": True}
    }
    payload = {"Authorization": f"Bearer {registered['accessToken']}"}
    assert asyncio.run(_close_code_after_init(_ws_url(served), payload)) == 4401


def test_a_websocket_with_a_valid_token_is_acknowledged_and_answers_operations_and_errors(
    served, tokens
):
    async def session() -> list[dict]:
        async with connect(_ws_url(served), subprotocols=[PROTOCOL]) as ws:
            auth = {"Authorization": f"Bearer {tokens['accessToken']}"}
            await ws.send(json.dumps({"type": "connection_init", "payload": auth}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 5)) == {"type": "connection_ack"}
            answers = []
            for op_id, query in [
                ("1", 'subscription { taskLogs(id: "not-a-task") { text } }'),
                ("2", "{ me { email } }"),
                ("3", "subscription { nope }"),
            ]:
                subscribe = {"id": op_id, "type": "subscribe", "payload": {"query": query}}
                await ws.send(json.dumps(subscribe))
                answers.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
                if answers[-1]["type"] == "next":
                    done = json.loads(await asyncio.wait_for(ws.recv(), 5))
                    assert done == {"id": op_id, "type": "complete"}
            await ws.send(json.dumps({"type": "ping"}))
            answers.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
            return answers

    not_found, query_over_ws, invalid, pong = asyncio.run(session())
    assert not_found["type"] == "next" and not_found["id"] == "1"
    assert not_found["payload"]["errors"][0]["message"] == "Task not found."
    assert not_found["payload"]["errors"][0]["extensions"] == {"code": "NOT_FOUND"}
    # One transport: a query over the WebSocket runs like one over HTTP, as the same caller.
    assert query_over_ws == {
        "id": "2",
        "type": "next",
        "payload": {"data": {"me": {"email": tokens["user"]["email"]}}},
    }
    assert invalid["type"] == "error"
    assert invalid["payload"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert pong == {"type": "pong"}


def test_subscribing_before_connection_init_closes_with_4401(served):
    async def session() -> int:
        async with connect(_ws_url(served), subprotocols=[PROTOCOL]) as ws:
            subscribe = {"id": "1", "type": "subscribe", "payload": {"query": "{ __typename }"}}
            await ws.send(json.dumps(subscribe))
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), timeout=5)
            return closed.value.rcvd.code

    assert asyncio.run(session()) == 4401


def test_a_websocket_on_another_path_is_refused(served):
    async def attempt() -> None:
        async with connect(_ws_url(served, "/elsewhere"), subprotocols=[PROTOCOL]):
            pass

    with pytest.raises(InvalidStatus) as refused:
        asyncio.run(attempt())
    assert refused.value.response.status_code == 403
