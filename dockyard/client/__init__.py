"""A typed Python client of Dockyard's GraphQL gateway, generated from the contract.

`Dockyard` (blocking) and `AsyncDockyard` (asyncio) have one method per operation of the contract
(docs/schema/gateway.graphql), named after its root field in snake_case; results are the pydantic
models of dockyard.client.generated, subscriptions are iterators, uploads stream from a file
object, and an error answered by the gateway raises DockyardError carrying its extensions.code.
"""

from __future__ import annotations

import asyncio
import inspect
import mimetypes
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import IO, Any

import httpx
from websockets.exceptions import ConnectionClosed

from dockyard.client.generated import (
    CreateTaskInput,
    CreateWorkflowInput,
    EnvVarInput,
    FileStatus,
    GeneratedClient,
    TaskStatus,
    Upload,
    WorkflowStepInput,
)
from dockyard.client.generated.exceptions import (
    GraphQLClientGraphQLMultiError,
    GraphQLClientHttpError,
)

__all__ = [
    "AsyncDockyard",
    "CreateTaskInput",
    "CreateWorkflowInput",
    "Dockyard",
    "DockyardError",
    "EnvVarInput",
    "FileStatus",
    "TaskStatus",
    "Upload",
    "WorkflowStepInput",
]

#: The CSRF header the gateway requires on multipart uploads (as Apollo Server does).
PREFLIGHT = {"apollo-require-preflight": "true"}
#: WebSocket close codes of the gateway's subscriptions and the error codes they mean.
CLOSE_CODES = {4401: "UNAUTHENTICATED", 4403: "FORBIDDEN"}


class DockyardError(Exception):
    """An error the gateway answered: its extensions.code, message and per-field messages."""

    def __init__(self, code: str, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.fields = fields or {}

    @classmethod
    def from_graphql(cls, error: GraphQLClientGraphQLMultiError) -> DockyardError:
        """The first error of a GraphQL response, the others kept in `errors`."""
        first = error.errors[0]
        extensions = first.extensions or {}
        raised = cls(
            str(extensions.get("code", "INTERNAL_SERVER_ERROR")),
            first.message,
            extensions.get("fields"),  # type: ignore[arg-type]
        )
        raised.errors = error.errors
        return raised


def _ws_url(url: str) -> str:
    return url.replace("https://", "wss://", 1).replace("http://", "ws://", 1)


class AsyncDockyard(GeneratedClient):
    """The asyncio client: `url` is the gateway's GraphQL endpoint (…/graphql)."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        refresh_token: str | None = None,
        timeout: float = 60,
    ) -> None:
        super().__init__(
            url=url,
            http_client=httpx.AsyncClient(timeout=timeout, headers=PREFLIGHT),
            ws_url=_ws_url(url),
        )
        self.token: str | None = None
        self.refresh_token_value = refresh_token
        self.use_token(token)

    def use_token(self, token: str | None) -> None:
        """Send `token` as the bearer of every later operation and subscription."""
        self.token = token
        headers = self.http_client.headers  # type: ignore[attr-defined]
        if token:
            headers["Authorization"] = f"Bearer {token}"
            self.ws_connection_init_payload = {"Authorization": f"Bearer {token}"}
        else:
            headers.pop("Authorization", None)
            self.ws_connection_init_payload = None

    def _keep(self, payload: Any) -> Any:
        self.use_token(payload.access_token)
        self.refresh_token_value = payload.refresh_token
        return payload

    async def register(self, email: str, password: str, **kwargs: Any) -> Any:
        """Register, then act as the new user."""
        return self._keep(await super().register(email, password, **kwargs))

    async def login(self, email: str, password: str, **kwargs: Any) -> Any:
        """Log in, then act as that user."""
        return self._keep(await super().login(email, password, **kwargs))

    async def refresh_token(self, refresh_token: str | None = None, **kwargs: Any) -> Any:
        """Trade the (given or last received) refresh token for a new pair, and use it."""
        token = refresh_token or self.refresh_token_value
        if not token:
            raise DockyardError("UNAUTHENTICATED", "no refresh token: log in first")
        return self._keep(await super().refresh_token(token, **kwargs))

    async def change_password(self, current_password: str, new_password: str, **kwargs: Any):
        """Change the password; the new session replaces this one."""
        return self._keep(await super().change_password(current_password, new_password, **kwargs))

    async def finish_oidc_login(self, provider: str, code: str, state: str, **kwargs: Any):
        """Finish a single sign-on login, then act as that user."""
        return self._keep(await super().finish_oidc_login(provider, code, state, **kwargs))

    async def upload(
        self,
        source: str | os.PathLike[str] | IO[bytes],
        *,
        filename: str | None = None,
        content_type: str | None = None,
    ) -> Any:
        """Upload a path or a binary file object; the content is streamed, never held whole."""
        if isinstance(source, str | os.PathLike):
            with open(source, "rb") as content:
                return await self.upload(
                    content, filename=filename or Path(source).name, content_type=content_type
                )
        name = filename or Path(getattr(source, "name", "upload")).name
        kind = content_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
        return await self.upload_file(Upload(name, source, kind))  # type: ignore[arg-type]

    def get_data(self, response: Any) -> dict[str, Any]:
        """The data of a response; DockyardError when it carries errors."""
        try:
            return super().get_data(response)
        except GraphQLClientGraphQLMultiError as error:
            raise DockyardError.from_graphql(error) from None
        except GraphQLClientHttpError as error:
            try:
                body = response.json()
            except ValueError:
                body = {}
            if isinstance(body, dict) and body.get("errors"):
                raise DockyardError.from_graphql(
                    GraphQLClientGraphQLMultiError.from_errors_dicts(body["errors"])
                ) from None
            code = "PAYLOAD_TOO_LARGE" if error.status_code == 413 else "INTERNAL_SERVER_ERROR"
            raise DockyardError(code, f"HTTP {error.status_code}") from None

    async def execute_ws(self, *args: Any, **kwargs: Any) -> AsyncIterator[dict[str, Any]]:
        """Run one subscription over graphql-transport-ws; its `next` payloads' data."""
        try:
            async for data in super().execute_ws(*args, **kwargs):
                yield data
        except GraphQLClientGraphQLMultiError as error:
            raise DockyardError.from_graphql(error) from None
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd else None
            if code in CLOSE_CODES:
                raise DockyardError(CLOSE_CODES[code], closed.rcvd.reason or "refused") from None
            raise

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self.http_client.aclose()


class Dockyard:
    """The blocking client: every method of AsyncDockyard, run on an event loop of its own.

    Coroutine methods return their result; subscriptions return a plain iterator (leaving the
    loop early closes the subscription). Use as a context manager, or call close().
    """

    def __init__(self, url: str, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.client: AsyncDockyard = self._run(self._create(url, options))

    @staticmethod
    async def _create(url: str, options: dict[str, Any]) -> AsyncDockyard:
        return AsyncDockyard(url, **options)

    def _run(self, awaitable: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(awaitable, self._loop).result()

    def _iterate(self, iterator: AsyncIterator[Any]) -> Iterator[Any]:
        try:
            while True:
                try:
                    item = self._run(iterator.__anext__())
                except StopAsyncIteration:
                    return
                yield item
        finally:
            self._run(iterator.aclose())  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.client, name)
        if inspect.isasyncgenfunction(method):
            return lambda *args, **kwargs: self._iterate(method(*args, **kwargs))
        if inspect.iscoroutinefunction(method):
            return lambda *args, **kwargs: self._run(method(*args, **kwargs))
        return method

    @property
    def token(self) -> str | None:
        """The access token operations are sent with."""
        return self.client.token

    def use_token(self, token: str | None) -> None:
        """Send `token` as the bearer of every later operation and subscription."""
        self.client.use_token(token)

    def close(self) -> None:
        """Close the connections and stop the loop."""
        self._run(self.client.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> Dockyard:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
