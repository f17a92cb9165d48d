"""Webhooks: the URL check (no internal addresses), the secret, the signature and the POST.

A URL must be http(s) and its host must resolve only to public addresses unless the operator
allows more (TASKS_WEBHOOK_ALLOW_PRIVATE, TASKS_WEBHOOK_PRIVATE_ALLOWLIST). The check is made at
creation and again at each delivery, which then connects to the very address it checked (a DNS
answer that changed in between cannot redirect it). Redirects are never followed.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import secrets
import socket
import ssl
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import delete, func, select

from services.tasks.models import Webhook
from services.tasks.notifications.kinds import NotificationEvent
from shared.address_policy import (
    AddressAllowlist,
    IPAddress,
    Resolver,
    resolve_addresses,
    resolve_host,
)
from shared.db import UnitOfWork

MAX_URL_LENGTH = 2048
SIGNATURE_HEADER = "Dockyard-Signature"
IDEMPOTENCY_HEADER = "Dockyard-Idempotency-Key"
EVENT_HEADER = "Dockyard-Event"
USER_AGENT = "Dockyard-Webhooks/1"


class WebhookUrlRefused(ValueError):
    """The URL is not one a webhook may have; the message says why (never which address)."""


class WebhookNotFound(Exception):
    """No such webhook, or not the caller's."""


class WebhookLimitReached(Exception):
    """The user has as many webhooks as one may."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"at most {limit} webhooks")
        self.limit = limit


@dataclass(frozen=True)
class WebhookPolicy:
    """Where webhooks may point, how long a delivery may take, how many failures disable one."""

    allow_private: bool = False
    allowlist: AddressAllowlist = AddressAllowlist()
    timeout: float = 10.0
    disable_after: int = 20
    max_webhooks: int = 10

    @classmethod
    def from_settings(cls, settings) -> WebhookPolicy:
        """The webhook part of TasksSettings."""
        return cls(
            allow_private=settings.WEBHOOK_ALLOW_PRIVATE,
            allowlist=AddressAllowlist.parse(settings.WEBHOOK_PRIVATE_ALLOWLIST),
            timeout=settings.WEBHOOK_TIMEOUT_SECONDS,
            disable_after=settings.WEBHOOK_DISABLE_AFTER_FAILURES,
            max_webhooks=settings.MAX_WEBHOOKS,
        )


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect (the address checked) and what to ask for."""

    scheme: str
    host: str
    port: int
    path: str
    address: IPAddress


def check_url(url: str, policy: WebhookPolicy, *, resolve: Resolver = resolve_host) -> Target:
    """The target of a webhook URL, or WebhookUrlRefused saying why it may not be one."""
    if len(url) > MAX_URL_LENGTH:
        raise WebhookUrlRefused(f"URL must be at most {MAX_URL_LENGTH} characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise WebhookUrlRefused("Not a valid URL.") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookUrlRefused("URL must be http:// or https:// with a host.")
    if parts.username or parts.password:
        raise WebhookUrlRefused("URL must not carry a user or password.")
    host = parts.hostname
    port = port or (443 if parts.scheme == "https" else 80)
    addresses = resolve_addresses(host, resolve=resolve)
    if not addresses:
        raise WebhookUrlRefused(f"Host {host!r} could not be resolved.")
    if not (policy.allow_private or policy.allowlist.trusts_host(host, port)):
        if not all(policy.allowlist.allows(a) for a in addresses):
            raise WebhookUrlRefused(
                f"Host {host!r} is not a public host (loopback, private and link-local "
                "addresses are refused)."
            )
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(parts.scheme, host, port, path, addresses[0])


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The Dockyard-Signature header value of a body sent at `timestamp`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


class DeliveryError(Exception):
    """A webhook did not take a delivery; `status` is its HTTP answer, if any."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = str(target.address)

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(
            target.host, target.port, timeout=timeout, context=ssl.create_default_context()
        )
        self._address = str(target.address)

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def post(target: Target, body: bytes, headers: dict[str, str], *, timeout: float) -> int:
    """POST the body to the checked address; its 2xx status, or DeliveryError (3xx included)."""
    connection_class = _PinnedHTTPS if target.scheme == "https" else _PinnedHTTP
    connection = connection_class(target, timeout)
    try:
        connection.request("POST", target.path, body=body, headers=headers)
        response = connection.getresponse()
        response.read(64 * 1024)
    except (OSError, http.client.HTTPException) as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from None
    finally:
        connection.close()
    if 300 <= response.status < 400:
        raise DeliveryError(f"HTTP {response.status}: redirects are not followed", response.status)
    if not 200 <= response.status < 300:
        raise DeliveryError(f"HTTP {response.status}", response.status)
    return response.status


def _view(webhook: Webhook) -> dict:
    return {
        "id": str(webhook.id),
        "url": webhook.url,
        "events": list(webhook.events),
        "enabled": webhook.enabled,
        "disabled_reason": webhook.disabled_reason,
        "created_at": webhook.created_at,
    }


def create_webhook(
    uow: UnitOfWork,
    *,
    policy: WebhookPolicy,
    owner_id: uuid.UUID,
    url: str,
    events: list[str],
    resolve: Resolver = resolve_host,
) -> tuple[dict, str]:
    """Add a webhook after checking its URL; the webhook and its secret (shown only now)."""
    check_url(url, policy, resolve=resolve)
    wanted = sorted({NotificationEvent(e).value for e in events})
    secret = "whsec_" + secrets.token_hex(32)
    with uow:
        count = uow.session.scalar(
            select(func.count()).select_from(Webhook).where(Webhook.owner_id == owner_id)
        )
        if (count or 0) >= policy.max_webhooks:
            raise WebhookLimitReached(policy.max_webhooks)
        webhook = Webhook(owner_id=owner_id, url=url, events=wanted, secret=secret)
        uow.session.add(webhook)
        uow.flush()
        uow.session.refresh(webhook)
        view = _view(webhook)
        uow.commit()
    return view, secret


def list_webhooks(uow: UnitOfWork, *, owner_id: uuid.UUID) -> list[dict]:
    """The user's webhooks, newest first."""
    with uow:
        rows = uow.session.scalars(
            select(Webhook)
            .where(Webhook.owner_id == owner_id)
            .order_by(Webhook.created_at.desc(), Webhook.id.desc())
        )
        return [_view(w) for w in rows]


def delete_webhook(uow: UnitOfWork, *, owner_id: uuid.UUID, webhook_id: uuid.UUID) -> None:
    """Delete one of the user's webhooks (its pending deliveries are then skipped)."""
    with uow:
        deleted = uow.session.execute(
            delete(Webhook).where(Webhook.id == webhook_id, Webhook.owner_id == owner_id)
        ).rowcount
        if not deleted:
            raise WebhookNotFound(str(webhook_id))
        uow.commit()
