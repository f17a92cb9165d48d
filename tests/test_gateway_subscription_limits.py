"""Subscriptions held to their limits: operations per socket and per user, and the token's life.

A served gateway (`python -m services.gateway.server`) in front of the real auth and tasks
services; each subscription follows a task that stays PENDING, so it stays open until closed.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import auth_service, gateway_env, gateway_process
from tests.gateway_clients import PROTOCOL, Account, Gateway

CREATE_TASK = "mutation ($input: CreateTaskInput!) { createTask(input: $input) { id } }"
TASK_UPDATED = "subscription ($id: ID!) { taskUpdated(id: $id) { id status } }"
#: Seconds an access token lives in the expiry test.
SHORT_TTL = 3


def _pending_task(gateway: Gateway, user: Account) -> str:
    body = gateway(
        CREATE_TASK, {"input": {"image": "busybox:1.36", "command": ["true"]}}, token=user.token
    )
    assert "errors" not in body, body
    return body["data"]["createTask"]["id"]


async def _socket(url: str, token: str):
    ws = await connect(url.replace("http://", "ws://") + "/graphql", subprotocols=[PROTOCOL])
    auth = {"Authorization": f"Bearer {token}"}
    await ws.send(json.dumps({"type": "connection_init", "payload": auth}))
    assert json.loads(await asyncio.wait_for(ws.recv(), 10)) == {"type": "connection_ack"}
    return ws


async def _subscribe(ws, op_id: str, task_id: str) -> dict:
    """Start following the task; the first message answering it."""
    payload = {"query": TASK_UPDATED, "variables": {"id": task_id}}
    await ws.send(json.dumps({"id": op_id, "type": "subscribe", "payload": payload}))
    return json.loads(await asyncio.wait_for(ws.recv(), 10))


def _refused(message: dict, op_id: str) -> bool:
    return (
        message["type"] == "error"
        and message["id"] == op_id
        and message["payload"][0]["extensions"]["code"] == "RATE_LIMITED"
    )


@pytest.fixture(scope="module")
def capped(auth_server, tasks_server) -> Iterator[str]:
    """A gateway allowing two operations per socket and three per user."""
    env = gateway_env(
        auth_server.url,
        tasks_url=tasks_server.url,
        GATEWAY_MAX_SUBSCRIPTIONS_PER_CONNECTION="2",
        GATEWAY_MAX_SUBSCRIPTIONS_PER_USER="3",
    )
    with gateway_process(env) as gateway:
        yield gateway.url


def test_operations_are_capped_per_socket_and_per_user(capped):
    gateway = Gateway(capped)
    user = gateway.sign_up()
    task_id = _pending_task(gateway, user)

    async def scenario() -> None:
        first, second = await _socket(capped, user.token), await _socket(capped, user.token)
        try:
            for op_id in ("a", "b"):
                assert (await _subscribe(first, op_id, task_id))["type"] == "next"
            assert _refused(await _subscribe(first, "c", task_id), "c")
            # The user's third anywhere is allowed, the fourth is not.
            assert (await _subscribe(second, "d", task_id))["type"] == "next"
            assert _refused(await _subscribe(second, "e", task_id), "e")
            # Completing one frees a place for the user.
            await first.send(json.dumps({"id": "a", "type": "complete"}))
            await asyncio.sleep(0.2)
            assert (await _subscribe(second, "f", task_id))["type"] == "next"
        finally:
            await first.close()
            await second.close()
        # Closed sockets give their places back.
        third = await _socket(capped, user.token)
        try:
            for op_id in ("g", "h"):
                assert (await _subscribe(third, op_id, task_id))["type"] == "next"
        finally:
            await third.close()

    asyncio.run(scenario())


def test_another_users_operations_do_not_count_against_yours(capped):
    gateway = Gateway(capped)
    alice, bob = gateway.sign_up(), gateway.sign_up()
    alices, bobs = _pending_task(gateway, alice), _pending_task(gateway, bob)

    async def scenario() -> None:
        sockets = [await _socket(capped, alice.token) for _ in range(2)]
        sockets.append(await _socket(capped, bob.token))
        try:
            for ws, op_id in ((sockets[0], "1"), (sockets[0], "2"), (sockets[1], "3")):
                assert (await _subscribe(ws, op_id, alices))["type"] == "next"
            assert (await _subscribe(sockets[2], "1", bobs))["type"] == "next"
        finally:
            for ws in sockets:
                await ws.close()

    asyncio.run(scenario())


@pytest.fixture(scope="module")
def short_lived(test_env, tasks_server) -> Iterator[tuple[str, Gateway]]:
    """A gateway in front of an auth service whose access tokens live SHORT_TTL seconds."""
    with auth_service(ACCESS_TOKEN_TTL=SHORT_TTL) as auth:
        env = gateway_env(auth.url, tasks_url=tasks_server.url)
        with gateway_process(env) as gateway:
            yield gateway.url, Gateway(gateway.url)


def test_an_idle_subscription_is_closed_4401_when_its_token_expires(short_lived):
    url, gateway = short_lived
    user = gateway.sign_up()
    task_id = _pending_task(gateway, user)

    async def scenario() -> tuple[int, float]:
        ws = await _socket(url, user.token)
        opened = time.monotonic()
        assert (await _subscribe(ws, "idle", task_id))["type"] == "next"
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), SHORT_TTL + 5)
        return closed.value.rcvd.code, time.monotonic() - opened

    code, lived = asyncio.run(scenario())
    assert code == 4401
    assert lived <= SHORT_TTL + 1.5
