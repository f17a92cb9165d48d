"""Clients of a served gateway: HTTP (JSON, apollo-upload-client uploads), graphql-transport-ws."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import requests
from websockets.asyncio.client import ClientConnection, connect

from services.gateway.tests.apollo import ACCEPT, ApolloUpload, apollo_upload
from tests.conftest import PASSWORD, REGISTER, unique_email

PROTOCOL = "graphql-transport-ws"
#: Longest wait for one WebSocket message: relays publish within their poll interval (0.2 s).
WAIT = 15
FILE = """
    id filename originalFilename contentType size sha256 status lineCount wordCount mimeType
    error createdAt processedAt
"""
GET_FILE = f"query ($id: ID!) {{ file(id: $id) {{ {FILE} }} }}"
FILE_UPDATED = """
    subscription ($id: ID!) {
      fileUpdated(id: $id) { id status size lineCount wordCount mimeType error processedAt }
    }
"""


@dataclass(frozen=True)
class Account:
    """A user registered through the gateway and their access token."""

    id: str
    token: str


class Gateway:
    """A client of a served gateway: JSON operations and apollo-upload-client uploads."""

    def __init__(self, url: str) -> None:
        self.url = f"{url}/graphql"
        self.session = requests.Session()

    def post(self, query: str, variables: dict | None = None, *, token: str | None = None):
        """POST one JSON operation; returns the response."""
        headers = {"Accept": ACCEPT}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return self.session.post(
            self.url,
            json={"query": query, "variables": variables or {}},
            headers=headers,
            timeout=30,
        )

    def __call__(self, query: str, variables: dict | None = None, **kwargs) -> dict:
        """An operation that must have executed (HTTP 200); its JSON body."""
        response = self.post(query, variables, **kwargs)
        assert response.status_code == 200, response.text
        return response.json()

    def upload(
        self,
        content: bytes | Iterator[bytes],
        *,
        token: str | None,
        filename: str = "notes.txt",
        file_type: str = "text/plain",
        request: ApolloUpload | None = None,
        preflight: bool = True,
    ) -> requests.Response:
        """Upload `content` as apollo-upload-client does (a generator is sent chunked)."""
        request = request or apollo_upload(filename, file_type=file_type)
        if isinstance(content, bytes):
            body: bytes | Iterator[bytes] = request.body(content)
        else:
            body = _chain(request.head, content, request.tail)
        return self.session.post(
            self.url,
            data=body,
            headers=request.headers(token, preflight=preflight),
            timeout=60,
        )

    def sign_up(self) -> Account:
        """Register a fresh user."""
        body = self(REGISTER, {"e": unique_email("files"), "p": PASSWORD})
        payload = body["data"]["register"]
        return Account(id=payload["user"]["id"], token=payload["accessToken"])


def _chain(head: bytes, content: Iterator[bytes], tail: bytes) -> Iterator[bytes]:
    yield head
    yield from content
    yield tail


def codes(body: dict) -> list[str]:
    """The extensions.code of every error."""
    return [error["extensions"]["code"] for error in body.get("errors", [])]


def upload(gateway: Gateway, user: Account, content: bytes = b"hello world\n", **kwargs) -> dict:
    """Upload through the gateway; the File it answered."""
    response = gateway.upload(content, token=user.token, **kwargs)
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    return body["data"]["uploadFile"]


class Socket:
    """One graphql-transport-ws connection, acknowledged."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def subscribe(self, op_id: str, query: str, variables: dict) -> None:
        """Start an operation."""
        payload = {"query": query, "variables": variables}
        await self.ws.send(json.dumps({"id": op_id, "type": "subscribe", "payload": payload}))

    async def receive(self) -> dict:
        """The next message (fails after WAIT seconds)."""
        return json.loads(await asyncio.wait_for(self.ws.recv(), WAIT))

    async def next_state(self, op_id: str, field: str) -> dict:
        """The next `next` message of `op_id`: the object it carries."""
        message = await self.receive()
        assert message["type"] == "next" and message["id"] == op_id, message
        assert "errors" not in message["payload"], message
        return message["payload"]["data"][field]

    async def completed(self, op_id: str) -> None:
        """Expect `complete` for `op_id` next."""
        assert await self.receive() == {"id": op_id, "type": "complete"}


def session(url: str, user: Account, scenario) -> Any:
    """Run `scenario(socket)` on a connection authenticated as `user`."""

    async def run():
        ws_url = url.replace("http://", "ws://") + "/graphql"
        async with connect(ws_url, subprotocols=[PROTOCOL]) as ws:
            auth = {"Authorization": f"Bearer {user.token}"}
            await ws.send(json.dumps({"type": "connection_init", "payload": auth}))
            assert json.loads(await asyncio.wait_for(ws.recv(), WAIT)) == {"type": "connection_ack"}
            return await scenario(Socket(ws))

    return asyncio.run(run())
