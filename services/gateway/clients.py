"""REST clients of the internal services: one class per service, pooled and time-limited."""

from __future__ import annotations

import asyncio
import contextlib
import json as jsonlib
import logging
import ssl
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

from services.gateway.config import GatewaySettings
from services.gateway.errors import GatewayError, NotFound, ServiceUnavailable
from services.gateway.uploads import FileUpload
from shared.service_identity import CREDENTIAL_INVALID, CREDENTIAL_REQUIRED, ServiceCredentials
from shared.service_identity import HEADER as SERVICE_CREDENTIAL_HEADER

log = logging.getLogger("dockyard.gateway.clients")

_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})
#: Answers after which an idempotent call is tried again.
_RETRY_STATUSES = frozenset({502, 503, 504})
#: Seconds before the second retry; each later one waits twice as long (the first is at once).
_RETRY_BACKOFF = 0.05
#: Idle seconds after which a pooled connection is dropped: below the services' keep-alive
#: (deploy/gunicorn.conf.py), so the gateway never sends a POST on a connection being closed.
_KEEPALIVE_SECONDS = 10.0
#: What a call can fail with before the service answered: it cannot be reached or is too slow.
_TRANSPORT_ERRORS = (aiohttp.ClientError, TimeoutError)
#: Retry-After (seconds) of a call that got no connection to its service in time.
SATURATED_RETRY_AFTER = 1


@dataclass(frozen=True)
class Answer:
    """A service's answer: status, headers and the whole body."""

    status: int
    headers: Mapping[str, str]
    content: bytes


@dataclass(frozen=True)
class Caller:
    """Who a call is made for: forwarded with every upstream request."""

    client_address: str | None = None
    request_id: str | None = None
    token: str | None = None

    def headers(self, *, with_token: bool) -> dict[str, str]:
        """X-Request-ID, X-Forwarded-For and, when asked, the bearer token."""
        headers = {}
        if self.request_id:
            headers["X-Request-ID"] = self.request_id
        if self.client_address:
            # Replaces whatever the client claimed. For logs and proxies only: a service takes
            # the address from the signed service credential (shared/service_identity.py).
            headers["X-Forwarded-For"] = self.client_address
        if with_token and self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers


def _camel(name: str) -> str:
    # A leading underscore is kept: "_schema" (an error of the whole body) is no field name.
    stripped = name.lstrip("_")
    head, *rest = stripped.split("_")
    return name[: len(name) - len(stripped)] + head + "".join(p[:1].upper() + p[1:] for p in rest)


def _field_summary(fields: Mapping[str, str]) -> str:
    # The message shared.web composes from field errors when a view gives none of its own.
    return "Invalid input: " + "; ".join(f"{k}: {v}" for k, v in sorted(fields.items()))


def _retry_after(value: str | None) -> int | None:
    try:
        return max(int(value), 0) if value is not None else None
    except ValueError:
        return None


class ServiceClient:
    """Base of the per-service clients: JSON over a pooled aiohttp session, GatewayErrors.

    The pool belongs to the event loop that first used it: a client used from another loop
    (a test's, after the server's) opens a pool of its own there.
    """

    #: The service's name in messages and logs.
    service = ""

    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout: float,
        read_timeout: float,
        retries: int,
        pool_size: int,
        credentials: ServiceCredentials | None = None,
        ca_file: str = "",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.credentials = credentials
        # Built once: loading a CA bundle per connection pool would cost each event loop.
        self._ssl: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=ca_file) if ca_file else True
        )
        self.timeout = aiohttp.ClientTimeout(
            total=None, connect=connect_timeout, sock_read=read_timeout
        )
        self.retries = retries
        self.pool_size = pool_size
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def from_settings(cls, settings: GatewaySettings, base_url: str) -> ServiceClient:
        """A client configured with the gateway's timeouts, retries and pool size."""
        return cls(base_url, **_client_options(settings))

    def _pool(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._loop is not loop:
            self._discard_session()
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self.pool_size, keepalive_timeout=_KEEPALIVE_SECONDS, ssl=self._ssl
                ),
                timeout=self.timeout,
                # One session serves every user, so a cookie set by a service is never kept.
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
            )
            self._loop = loop
        return self._session

    def _discard_session(self) -> None:
        # A session left behind by an event loop that has ended (each test client call, a
        # restarted server) can no longer be awaited; closing its connector there costs nothing
        # (its sockets went with the loop) and spares a "Unclosed client session" at exit.
        if self._session is not None and self._loop is not None and self._loop.is_closed():
            self._session.connector.close()
        self._session = None

    async def close(self) -> None:
        """Close the pooled connections (of the running event loop's pool)."""
        if self._session is not None and self._loop is asyncio.get_running_loop():
            await self._session.close()
        self._session = self._loop = None

    async def _send_once(self, method: str, path: str, **kwargs: Any) -> Answer:
        url = self.base_url + path
        async with self._pool().request(method, url, allow_redirects=False, **kwargs) as response:
            return Answer(response.status, response.headers, await response.read())

    async def _send(self, method: str, path: str, **kwargs: Any) -> Answer:
        """Send once, or for an idempotent call retry transport failures and 502/503/504."""
        attempts = 1 + (self.retries if method in _IDEMPOTENT else 0)
        for attempt in range(attempts):
            if attempt > 1:
                await asyncio.sleep(_RETRY_BACKOFF * 2 ** (attempt - 2))
            last = attempt == attempts - 1
            try:
                answer = await self._send_once(method, path, **kwargs)
            except _TRANSPORT_ERRORS:
                if last:
                    raise
                continue
            if last or answer.status not in _RETRY_STATUSES:
                return answer
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def get_or_none(self, path: str | None, caller: Caller) -> dict[str, Any] | None:
        """GET one of the caller's resources; None for a malformed id (no path) or NOT_FOUND."""
        if path is None:
            return None
        try:
            return await self.request("GET", path, caller, with_token=True)
        except GatewayError as exc:
            if exc.code == NotFound.code:
                return None
            raise

    async def request(
        self,
        method: str,
        path: str,
        caller: Caller,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        with_token: bool = False,
        content: AsyncIterator[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> Any:
        """Call the service; return the decoded JSON body (None for 204) or raise GatewayError.

        `content` may be an async iterator of bytes: it is sent chunked, as it is produced;
        a GatewayError it raises (the client's upload broke) abandons the call and propagates.
        """
        sent_headers = caller.headers(with_token=with_token)
        if self.credentials is not None:
            sent_headers[SERVICE_CREDENTIAL_HEADER] = self.credentials.token_for(
                self.service, caller.client_address
            )
        if headers:
            sent_headers.update(headers)
        if json is not None:
            content = jsonlib.dumps(json).encode()
            sent_headers["Content-Type"] = "application/json"
        try:
            answer = await self._send(
                method,
                path,
                params=params,
                data=content,
                headers=sent_headers,
                timeout=timeout or self.timeout,
            )
        except _TRANSPORT_ERRORS as exc:
            cause = _gateway_error_in(exc)
            if cause is not None:
                raise cause from None
            log.warning("%s service unreachable: %s %s: %r", self.service, method, path, exc)
            # No connection in time (every pooled one busy, or the service's backlog full): it
            # is there but saturated, so the client is told to slow down, not just to fail.
            busy = isinstance(exc, aiohttp.ConnectionTimeoutError)
            raise self.unavailable(retry_after=SATURATED_RETRY_AFTER if busy else None) from None
        if answer.status >= 500:
            log.warning(
                "%s service failed: %s %s answered %s", self.service, method, path, answer.status
            )
            # A service slowing its intake says when to come back; the client hears the same.
            retry_after = answer.headers.get("Retry-After") if answer.status == 503 else None
            raise self.unavailable(retry_after=_retry_after(retry_after))
        if answer.status == 204:
            return None
        try:
            body = jsonlib.loads(answer.content)
        except ValueError:
            body = None
        if answer.status >= 400:
            raise self.translate_error(answer, body)
        if body is None:
            log.error("%s service answered %s %s without JSON", self.service, method, path)
            raise GatewayError("Internal server error.")
        return body

    def unavailable(self, *, retry_after: int | None = None) -> ServiceUnavailable:
        """The error clients see when this service cannot answer (in `retry_after` s, if known)."""
        return ServiceUnavailable(
            f"The {self.service} service is unavailable. Try again later.", retry_after=retry_after
        )

    def translate_error(self, answer: Answer, body: Any) -> GatewayError:
        """Turn the shared REST error shape into a GatewayError with the same code."""
        if isinstance(body, dict) and body.get("code") in (CREDENTIAL_REQUIRED, CREDENTIAL_INVALID):
            # The two ends hold different secrets: this service's outage, not the client's fault.
            log.error(
                "%s service refused the gateway's credential (%s): check %s_SERVICE_SECRET",
                self.service,
                body["code"],
                self.service.upper(),
            )
            return self.unavailable()
        if not isinstance(body, dict) or not isinstance(body.get("code"), str):
            log.error("%s service answered %s without an error body", self.service, answer.status)
            return GatewayError("Internal server error.")
        message = str(body.get("message") or "Request failed.")
        fields = self.translate_fields(body.get("fields"))
        if fields and message == _field_summary(body["fields"]):
            # That message names the REST fields; name the ones the client sent instead.
            message = _field_summary(fields)
        error = GatewayError(
            message,
            code=body["code"],
            fields=fields,
            retry_after=_retry_after(answer.headers.get("Retry-After"))
            if answer.status == 429
            else None,
        )
        if error.code == "INTERNAL_SERVER_ERROR":
            # A code outside the contract (405, 415...) means the gateway called it wrongly.
            log.error(
                "%s service answered %s %s: %s",
                self.service,
                answer.status,
                body.get("code"),
                body.get("message"),
            )
            error.message = "Internal server error."
            error.fields = None
        return error

    @staticmethod
    def translate_fields(fields: Any) -> dict[str, str] | None:
        """REST field names (snake_case) become GraphQL argument names (camelCase)."""
        if not isinstance(fields, dict) or not fields:
            return None
        return {_camel(str(name)): str(message) for name, message in fields.items()}

    async def check(self) -> None:
        """Readiness probe: the service answers its liveness endpoint."""
        answer = await self._send_once("GET", "/healthz")
        if answer.status != 200:
            raise RuntimeError(f"{self.service} answered {answer.status}")


def _gateway_error_in(exc: BaseException) -> GatewayError | None:
    """The GatewayError behind a failed call, when the body being sent raised one."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, GatewayError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def service_credentials(settings: GatewaySettings) -> ServiceCredentials:
    """What signs the gateway's calls: each service's own secret."""
    return ServiceCredentials(
        {
            "auth": settings.AUTH_SERVICE_SECRET,
            "files": settings.FILES_SERVICE_SECRET,
            "tasks": settings.TASKS_SERVICE_SECRET,
        }
    )


def _client_options(settings: GatewaySettings) -> dict[str, Any]:
    return {
        "connect_timeout": settings.UPSTREAM_CONNECT_TIMEOUT,
        "read_timeout": settings.UPSTREAM_READ_TIMEOUT,
        "retries": settings.UPSTREAM_RETRIES,
        "pool_size": settings.UPSTREAM_POOL_SIZE,
        "credentials": service_credentials(settings),
        "ca_file": settings.TLS_CA_FILE,
    }


class AuthClient(ServiceClient):
    """The auth service: accounts, token pairs, logout and the current user."""

    service = "auth"

    async def register(self, caller: Caller, *, email: str, password: str) -> dict[str, Any]:
        """Create an account; returns the first token pair and the user."""
        return await self.request(
            "POST", "/v1/auth/register", caller, json={"email": email, "password": password}
        )

    async def login(self, caller: Caller, *, email: str, password: str) -> dict[str, Any]:
        """Exchange credentials for a token pair (rate limited per account and address)."""
        return await self.request(
            "POST", "/v1/auth/login", caller, json={"email": email, "password": password}
        )

    async def refresh(self, caller: Caller, *, refresh_token: str) -> dict[str, Any]:
        """Rotate a refresh token into a new pair."""
        return await self.request(
            "POST", "/v1/auth/refresh", caller, json={"refresh_token": refresh_token}
        )

    async def logout(self, caller: Caller) -> None:
        """Revoke the caller's access token and its refresh family."""
        await self.request("POST", "/v1/auth/logout", caller, with_token=True)

    async def logout_all(self, caller: Caller) -> None:
        """End every session of the caller's user."""
        await self.request("POST", "/v1/auth/logout-all", caller, with_token=True)

    async def current_user(self, caller: Caller) -> dict[str, Any]:
        """The user the caller's access token speaks for."""
        return await self.request("GET", "/v1/users/me", caller, with_token=True)

    async def oidc_providers(self, caller: Caller) -> list[str]:
        """The OpenID Connect providers users may sign in with."""
        answer = await self.request("GET", "/v1/auth/oidc/providers", caller)
        return answer["providers"]

    async def start_oidc_login(
        self, caller: Caller, *, provider: str, redirect_uri: str
    ) -> dict[str, Any]:
        """Begin a sign-in at a provider: its authorization URL and the state."""
        return await self.request(
            "POST",
            "/v1/auth/oidc/start",
            caller,
            json={"provider": provider, "redirect_uri": redirect_uri},
        )

    async def finish_oidc_login(
        self, caller: Caller, *, provider: str, code: str, state: str
    ) -> dict[str, Any]:
        """Finish a sign-in with what the provider sent back; a token pair and the user."""
        return await self.request(
            "POST",
            "/v1/auth/oidc/finish",
            caller,
            json={"provider": provider, "code": code, "state": state},
        )

    async def change_password(
        self, caller: Caller, *, current_password: str, new_password: str
    ) -> dict[str, Any]:
        """Set a new password; returns the caller's new token pair (other sessions end)."""
        return await self.request(
            "POST",
            "/v1/auth/password-change",
            caller,
            json={"current_password": current_password, "new_password": new_password},
            with_token=True,
        )

    async def request_password_reset(self, caller: Caller, *, email: str) -> None:
        """Ask for a reset mail (the answer says nothing about the email)."""
        await self.request("POST", "/v1/auth/password-reset/request", caller, json={"email": email})

    async def reset_password(self, caller: Caller, *, token: str, new_password: str) -> None:
        """Set a new password with a mailed token."""
        await self.request(
            "POST",
            "/v1/auth/password-reset",
            caller,
            json={"token": token, "new_password": new_password},
        )

    async def delete_account(self, caller: Caller, *, password: str | None) -> dict[str, Any]:
        """Lock the caller out and start deleting their account; the deletion saga's id."""
        return await self.request(
            "POST",
            "/v1/users/me/deletion",
            caller,
            json={"password": password},
            with_token=True,
        )

    async def request_email_verification(self, caller: Caller) -> None:
        """Ask for a mail confirming the caller's email address."""
        await self.request("POST", "/v1/users/me/email-verification", caller, with_token=True)

    async def verify_email(self, caller: Caller, *, token: str) -> dict[str, Any]:
        """Confirm an email address with a mailed token; returns the user."""
        return await self.request(
            "POST", "/v1/auth/email-verification", caller, json={"token": token}
        )


def _file_path(file_id: str) -> str | None:
    """The URL path of a file, or None when `file_id` cannot name one (only UUIDs go in)."""
    try:
        return f"/v1/files/{uuid.UUID(file_id)}"
    except ValueError:
        return None


def _file_not_found() -> NotFound:
    return NotFound("File not found.")


def _multipart_head(boundary: str, upload: FileUpload) -> bytes:
    # RFC 7578 with the exact name RFC 5987-encoded: any character survives, none can break
    # out of the header. The plain `filename` is only a fallback for parsers without filename*.
    name = quote(upload.filename, safe="")
    content_type = upload.content_type or "application/octet-stream"
    return (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="upload"; '
        f"filename*=UTF-8''{name}\r\n"
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode("ascii")


class FilesClient(ServiceClient):
    """The files service: upload (streamed through), list, read and delete the caller's files."""

    service = "files"

    def __init__(self, base_url: str, *, upload_timeout: float = 60.0, **kwargs: Any) -> None:
        super().__init__(base_url, **kwargs)
        self.upload_timeout = upload_timeout

    @classmethod
    def from_settings(cls, settings: GatewaySettings, base_url: str) -> FilesClient:
        """A client configured with the gateway's timeouts, retries and pool size."""
        return cls(base_url, upload_timeout=settings.UPLOAD_TIMEOUT, **_client_options(settings))

    async def upload_file(self, caller: Caller, *, upload: FileUpload) -> dict[str, Any]:
        """Pass a file on to the files service as it arrives, in a multipart body of its own.

        The body is sent chunked while the client's request is read; an error reading it
        (UploadTooLarge, UploadIncomplete) propagates and abandons the upstream request, so
        the files service stores nothing. A piece of the file that cannot be passed on within
        the upload timeout, or an answer that does not come within it, is SERVICE_UNAVAILABLE.
        """
        boundary = uuid.uuid4().hex
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.upload_timeout) as deadline:

                async def body() -> AsyncIterator[bytes]:
                    yield _multipart_head(boundary, upload)
                    async for chunk in upload.chunks():
                        deadline.reschedule(loop.time() + self.upload_timeout)
                        yield chunk
                    # The answer has its own timeout (sock_read), from the last byte on.
                    deadline.reschedule(None)
                    yield f"\r\n--{boundary}--\r\n".encode("ascii")

                return await self.request(
                    "POST",
                    "/v1/files",
                    caller,
                    content=body(),
                    headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
                    timeout=aiohttp.ClientTimeout(
                        total=None, connect=self.timeout.connect, sock_read=self.upload_timeout
                    ),
                    with_token=True,
                )
        except TimeoutError:
            log.warning("files service took the upload too slowly; abandoned")
            raise self.unavailable() from None

    async def list_files(
        self,
        caller: Caller,
        *,
        first: int | None = None,
        after: str | None = None,
        search: str | None = None,
        produced_by_task: str | None = None,
    ) -> dict[str, Any]:
        """One page of the caller's files (newest first, or best match first for `search`).

        `produced_by_task`: only that task's outputs.
        """
        params = {
            "first": first,
            "after": after,
            "search": search,
            "produced_by_task": produced_by_task,
        }
        params = {name: value for name, value in params.items() if value is not None}
        return await self.request("GET", "/v1/files", caller, params=params, with_token=True)

    async def get_file(self, caller: Caller, *, file_id: str) -> dict[str, Any] | None:
        """One of the caller's files; None when absent, not theirs, or not a file id."""
        return await self.get_or_none(_file_path(file_id), caller)

    @contextlib.asynccontextmanager
    async def open_content(
        self,
        caller: Caller,
        *,
        file_id: str,
        owner_id: str,
        method: str = "GET",
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """The files service's answer to a download of `owner_id`'s file, body unread.

        For a signed link, which carries no token: the service credential names the user the
        call acts for. Never retried (the body is streamed on as it comes); the service
        unreachable, failing, or refusing the credential is SERVICE_UNAVAILABLE.
        """
        path = _file_path(file_id)
        if path is None:
            raise _file_not_found()
        sent = caller.headers(with_token=False)
        if self.credentials is not None:
            sent[SERVICE_CREDENTIAL_HEADER] = self.credentials.token_for(
                self.service, caller.client_address, on_behalf_of=owner_id
            )
        sent.update(headers or {})
        url = f"{self.base_url}{path}/content"
        try:
            async with self._pool().request(
                method, url, headers=sent, allow_redirects=False
            ) as response:
                if response.status >= 500 or response.status == 401:
                    log.warning(
                        "files service answered a download with %s: %s",
                        response.status,
                        (await response.read())[:200],
                    )
                    raise self.unavailable()
                yield response
        except _TRANSPORT_ERRORS as exc:
            log.warning("files service unreachable during a download: %r", exc)
            raise self.unavailable() from None

    async def delete_file(self, caller: Caller, *, file_id: str) -> None:
        """Delete one of the caller's files and its content; NOT_FOUND when absent or not theirs."""
        path = _file_path(file_id)
        if path is None:
            raise _file_not_found()
        await self.request("DELETE", path, caller, with_token=True)

    def translate_error(self, answer: Answer, body: Any) -> GatewayError:
        """As for every service, but a full quota is PAYLOAD_TOO_LARGE, a leased file CONFLICT."""
        if isinstance(body, dict) and body.get("code") == "QUOTA_EXCEEDED":
            return GatewayError(
                str(body.get("message") or "Storage quota exceeded."), code="PAYLOAD_TOO_LARGE"
            )
        if isinstance(body, dict) and body.get("code") == "FILE_LEASED":
            return GatewayError(str(body.get("message") or "The file is in use."), code="CONFLICT")
        return super().translate_error(answer, body)


def _task_path(task_id: str, suffix: str = "") -> str | None:
    """The URL path of a task, or None when `task_id` cannot name one.

    Only a UUID goes into the path, so a client's id can never reach another endpoint.
    """
    try:
        return f"/v1/tasks/{uuid.UUID(task_id)}{suffix}"
    except ValueError:
        return None


def _task_not_found() -> NotFound:
    return NotFound("Task not found.")


def _schedule_path(schedule_id: str, suffix: str = "") -> str | None:
    """The URL path of a schedule, or None when `schedule_id` cannot name one (only UUIDs go in)."""
    try:
        return f"/v1/schedules/{uuid.UUID(schedule_id)}{suffix}"
    except ValueError:
        return None


def _schedule_not_found() -> NotFound:
    return NotFound("Schedule not found.")


def _without_none(values: Mapping[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}


class ScheduleCalls:
    """The tasks service's schedule endpoints, part of TasksClient (one client per service)."""

    request: Any
    get_or_none: Any

    async def create_schedule(self, caller: Caller, *, spec: Mapping[str, Any]) -> dict[str, Any]:
        """Create a schedule; `spec` holds the REST fields, a None value meaning "not given"."""
        body = _without_none(spec)
        if isinstance(body.get("task"), Mapping):
            body["task"] = _without_none(body["task"])
        if isinstance(body.get("workflow"), Mapping):
            body["workflow"] = _workflow_body(body["workflow"])
        return await self.request("POST", "/v1/schedules", caller, json=body, with_token=True)

    async def list_schedules(
        self, caller: Caller, *, first: int | None = None, after: str | None = None
    ) -> dict[str, Any]:
        """One page of the caller's schedules, newest first."""
        params = _without_none({"first": first, "after": after})
        return await self.request("GET", "/v1/schedules", caller, params=params, with_token=True)

    async def get_schedule(self, caller: Caller, *, schedule_id: str) -> dict[str, Any] | None:
        """One of the caller's schedules; None when absent or not theirs."""
        return await self.get_or_none(_schedule_path(schedule_id), caller)

    async def pause_schedule(self, caller: Caller, *, schedule_id: str) -> dict[str, Any]:
        """Pause one of the caller's schedules."""
        return await self._act(caller, schedule_id, "/pause")

    async def resume_schedule(self, caller: Caller, *, schedule_id: str) -> dict[str, Any]:
        """Resume one of the caller's schedules."""
        return await self._act(caller, schedule_id, "/resume")

    async def _act(self, caller: Caller, schedule_id: str, action: str) -> dict[str, Any]:
        path = _schedule_path(schedule_id, action)
        if path is None:
            raise _schedule_not_found()
        return await self.request("POST", path, caller, with_token=True)

    async def delete_schedule(self, caller: Caller, *, schedule_id: str) -> None:
        """Delete one of the caller's schedules (its runs are kept)."""
        path = _schedule_path(schedule_id)
        if path is None:
            raise _schedule_not_found()
        await self.request("DELETE", path, caller, with_token=True)

    async def next_runs(self, caller: Caller, *, schedule_id: str, count: int) -> list[str]:
        """The schedule's upcoming fire times (ISO-8601 with the schedule's offset)."""
        path = _schedule_path(schedule_id, "/next-runs")
        if path is None:
            raise _schedule_not_found()
        answer = await self.request("GET", path, caller, params={"count": count}, with_token=True)
        return answer["next_runs"]

    async def list_runs(
        self,
        caller: Caller,
        *,
        schedule_id: str,
        first: int | None = None,
        after: str | None = None,
    ) -> dict[str, Any]:
        """One page of the tasks the schedule started, newest first."""
        path = _schedule_path(schedule_id, "/runs")
        if path is None:
            raise _schedule_not_found()
        params = _without_none({"first": first, "after": after})
        return await self.request("GET", path, caller, params=params, with_token=True)


class NotificationCalls:
    """The tasks service's notification endpoints, part of TasksClient."""

    request: Any

    async def notification_rules(self, caller: Caller) -> list[dict[str, Any]]:
        """Every kind of event with its channels."""
        answer = await self.request("GET", "/v1/notification-settings", caller, with_token=True)
        return answer["rules"]

    async def update_notification_rules(
        self, caller: Caller, *, rules: list[Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        """Set the channels of the kinds named; every rule after."""
        body = {"rules": [dict(rule) for rule in rules]}
        answer = await self.request(
            "PUT", "/v1/notification-settings", caller, json=body, with_token=True
        )
        return answer["rules"]

    async def list_notifications(
        self, caller: Caller, *, first: int | None = None, after: str | None = None
    ) -> dict[str, Any]:
        """One page of the caller's notifications, newest first."""
        params = _without_none({"first": first, "after": after})
        return await self.request(
            "GET", "/v1/notifications", caller, params=params, with_token=True
        )

    async def list_webhooks(self, caller: Caller) -> list[dict[str, Any]]:
        """The caller's webhooks."""
        answer = await self.request("GET", "/v1/webhooks", caller, with_token=True)
        return answer["webhooks"]

    async def create_webhook(
        self, caller: Caller, *, url: str, events: list[str]
    ) -> dict[str, Any]:
        """Add a webhook: the webhook and its secret."""
        body = {"url": url, "events": list(events)}
        return await self.request("POST", "/v1/webhooks", caller, json=body, with_token=True)

    async def delete_webhook(self, caller: Caller, *, webhook_id: str) -> None:
        """Delete one of the caller's webhooks."""
        try:
            path = f"/v1/webhooks/{uuid.UUID(webhook_id)}"
        except ValueError:
            raise NotFound("Webhook not found.") from None
        await self.request("DELETE", path, caller, with_token=True)


def _workflow_path(workflow_id: str, suffix: str = "") -> str | None:
    try:
        return f"/v1/workflows/{uuid.UUID(workflow_id)}{suffix}"
    except ValueError:
        return None


def _workflow_body(spec: Mapping[str, Any]) -> dict[str, Any]:
    body = _without_none(spec)
    body["steps"] = [
        {**_without_none(step), "task": _without_none(step["task"])}
        for step in spec.get("steps") or []
    ]
    return body


class WorkflowCalls:
    """The tasks service's workflow endpoints, part of TasksClient (one client per service)."""

    request: Any
    get_or_none: Any

    async def create_workflow(self, caller: Caller, *, spec: Mapping[str, Any]) -> dict[str, Any]:
        """Create a workflow; `spec` holds the REST fields, a None value meaning "not given"."""
        body = _workflow_body(spec)
        return await self.request("POST", "/v1/workflows", caller, json=body, with_token=True)

    async def list_workflows(
        self, caller: Caller, *, first: int | None = None, after: str | None = None
    ) -> dict[str, Any]:
        """One page of the caller's workflows, newest first."""
        params = _without_none({"first": first, "after": after})
        return await self.request("GET", "/v1/workflows", caller, params=params, with_token=True)

    async def get_workflow(self, caller: Caller, *, workflow_id: str) -> dict[str, Any] | None:
        """One of the caller's workflows; None when absent or not theirs."""
        return await self.get_or_none(_workflow_path(workflow_id), caller)

    async def cancel_workflow(self, caller: Caller, *, workflow_id: str) -> dict[str, Any]:
        """Cancel one of the caller's workflows (a finished one comes back unchanged)."""
        path = _workflow_path(workflow_id, "/cancel")
        if path is None:
            raise NotFound("Workflow not found.")
        return await self.request("POST", path, caller, with_token=True)


class TasksClient(NotificationCalls, WorkflowCalls, ScheduleCalls, ServiceClient):
    """The tasks service: tasks, their output, workflows, schedules, notifications, webhooks."""

    service = "tasks"

    async def create_task(self, caller: Caller, *, spec: Mapping[str, Any]) -> dict[str, Any]:
        """Submit a task; `spec` holds the REST fields, a None value meaning "not given"."""
        body = {name: value for name, value in spec.items() if value is not None}
        return await self.request("POST", "/v1/tasks", caller, json=body, with_token=True)

    async def list_tasks(
        self,
        caller: Caller,
        *,
        first: int | None = None,
        after: str | None = None,
        status: str | None = None,
    ) -> dict[str, Any]:
        """One page of the caller's tasks, newest first, optionally of one status."""
        params = {"first": first, "after": after, "status": status}
        params = {name: value for name, value in params.items() if value is not None}
        return await self.request("GET", "/v1/tasks", caller, params=params, with_token=True)

    async def get_task(self, caller: Caller, *, task_id: str) -> dict[str, Any] | None:
        """One of the caller's tasks; None when absent or not theirs."""
        return await self.get_or_none(_task_path(task_id), caller)

    async def cancel_task(self, caller: Caller, *, task_id: str) -> dict[str, Any]:
        """Cancel one of the caller's tasks (a finished one comes back unchanged)."""
        path = _task_path(task_id, "/cancel")
        if path is None:
            raise _task_not_found()
        return await self.request("POST", path, caller, with_token=True)

    async def delete_task(self, caller: Caller, *, task_id: str) -> None:
        """Delete one of the caller's ended tasks and its logs (CONFLICT unless it has ended)."""
        path = _task_path(task_id)
        if path is None:
            raise _task_not_found()
        await self.request("DELETE", path, caller, with_token=True)

    async def read_logs(
        self, caller: Caller, *, task_id: str, tail: int | None = None
    ) -> dict[str, Any]:
        """A task's stored output, stdout and stderr interleaved; the last `tail` lines if given."""
        path = _task_path(task_id, "/logs")
        if path is None:
            raise _task_not_found()
        params = {"tail": tail} if tail is not None else None
        return await self.request("GET", path, caller, params=params, with_token=True)

    async def read_log_chunks(
        self, caller: Caller, *, task_id: str, after: int | None = None
    ) -> dict[str, Any] | None:
        """The task's output chunks stored after chunk `after`; None when absent or not theirs."""
        path = _task_path(task_id, "/logs/chunks")
        if path is None:
            return None
        params = {"after": after} if after is not None else None
        try:
            return await self.request("GET", path, caller, params=params, with_token=True)
        except GatewayError as exc:
            if exc.code == NotFound.code:
                return None
            raise


@dataclass(frozen=True)
class Clients:
    """One client per service, shared by every request of the process."""

    auth: AuthClient
    files: FilesClient
    tasks: TasksClient

    @classmethod
    def from_settings(cls, settings: GatewaySettings) -> Clients:
        """Build every client from the gateway's settings."""
        return cls(
            auth=AuthClient.from_settings(settings, settings.AUTH_SERVICE_URL),
            files=FilesClient.from_settings(settings, settings.FILES_SERVICE_URL),
            tasks=TasksClient.from_settings(settings, settings.TASKS_SERVICE_URL),
        )

    async def close(self) -> None:
        """Close every client's connections."""
        for client in (self.auth, self.files, self.tasks):
            await client.close()
