"""The gateway's IP block list: addresses and CIDR ranges refused before any work.

Entries come from two places: GATEWAY_BLOCKED_IPS (fixed at start) and a Redis set that
operators edit at run time with this module's command line; every gateway process reads the
set again each GATEWAY_BLOCKLIST_REFRESH_SECONDS, so an entry takes effect everywhere within
that time. If Redis cannot be read the last entries read stay in force.

    python -m services.gateway.blocklist list
    python -m services.gateway.blocklist add 203.0.113.7 198.51.100.0/24
    python -m services.gateway.blocklist remove 203.0.113.7
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import sys
from collections.abc import Iterable

import redis
import redis.asyncio
from prometheus_client import CollectorRegistry, Counter
from starlette.types import ASGIApp, Receive, Scope, Send

from services.gateway.config import GatewaySettings
from services.gateway.guards import client_host
from services.gateway.plumbing import send_error
from shared.config import ConfigError

log = logging.getLogger("dockyard.gateway.blocklist")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
#: RFC 6455 "policy violation": a WebSocket from a blocked address.
POLICY_VIOLATION = 1008


def redis_key(namespace: str) -> str:
    """The Redis set holding the run-time entries."""
    return f"{namespace}:gateway:blocked-ips"


def parse_entry(entry: str) -> Network:
    """An address or CIDR range; ValueError when it is neither."""
    return ipaddress.ip_network(entry.strip(), strict=False)


class BlockList:
    """The entries in force in this process: the configured ones plus Redis's, last read."""

    def __init__(
        self,
        configured: Iterable[str],
        *,
        client: redis.asyncio.Redis | None,
        namespace: str,
        refresh_seconds: float,
    ) -> None:
        self.configured = [parse_entry(entry) for entry in configured]
        self.client = client
        self.key = redis_key(namespace)
        self.refresh_seconds = refresh_seconds
        self.networks: list[Network] = list(self.configured)
        self._task: asyncio.Task | None = None

    @classmethod
    def from_settings(cls, settings: GatewaySettings) -> BlockList:
        """The block list of GATEWAY_BLOCKED_IPS plus the namespace's Redis set."""
        client = redis.asyncio.Redis.from_url(
            settings.REDIS_URL, socket_timeout=1.0, socket_connect_timeout=1.0
        )
        return cls(
            settings.BLOCKED_IPS,
            client=client,
            namespace=settings.NAMESPACE,
            refresh_seconds=settings.BLOCKLIST_REFRESH_SECONDS,
        )

    def blocks(self, host: str | None) -> bool:
        """Whether `host` (an address; anything else is never blocked) is in a blocked range."""
        if host is None or not self.networks:
            return False
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        if address.version == 6 and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)

    async def refresh(self) -> None:
        """Read the Redis set again; keep the entries in force when Redis cannot be read."""
        if self.client is None:
            return
        try:
            members = await self.client.smembers(self.key)
        except redis.RedisError as exc:
            log.warning("cannot read the block list from Redis, keeping the last one: %s", exc)
            return
        networks = list(self.configured)
        for member in members:
            try:
                networks.append(parse_entry(member.decode()))
            except ValueError:
                log.warning("ignoring a malformed block list entry %r", member)
        self.networks = networks

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_seconds)
            await self.refresh()

    async def start(self) -> None:
        """Read the entries once, then keep them fresh in the background."""
        await self.refresh()
        self._task = asyncio.create_task(self._refresh_forever())

    async def stop(self) -> None:
        """Stop refreshing and close the Redis connection."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self.client is not None:
            await self.client.aclose()


class Blocking:
    """ASGI middleware: a blocked address gets 403 (or a closed WebSocket) and nothing else."""

    def __init__(self, app: ASGIApp, *, blocklist: BlockList, registry: CollectorRegistry) -> None:
        self.app = app
        self.blocklist = blocklist
        self.refused = Counter(
            "gateway_blocked_requests_total",
            "Requests and WebSockets refused because their address is on the block list",
            ["type"],
            registry=registry,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse a blocked client; pass anything else on."""
        kind = scope["type"]
        if kind in ("http", "websocket") and self.blocklist.blocks(client_host(scope)):
            self.refused.labels(kind).inc()
            if kind == "http":
                await send_error(send, 403, "Your address is blocked.")
            else:
                await send({"type": "websocket.close", "code": POLICY_VIOLATION})
            return
        await self.app(scope, receive, send)


def main(argv: list[str] | None = None) -> int:
    """`python -m services.gateway.blocklist list|add|remove`: edit the run-time entries."""
    parser = argparse.ArgumentParser(
        prog="python -m services.gateway.blocklist",
        description="List, add or remove the gateway's run-time blocked addresses and ranges "
        "(kept in Redis; GATEWAY_BLOCKED_IPS entries are listed but set in the environment).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="print every entry in force")
    for name in ("add", "remove"):
        command = sub.add_parser(name, help=f"{name} addresses or CIDR ranges")
        command.add_argument("entries", nargs="+", metavar="ADDRESS_OR_RANGE")
    args = parser.parse_args(argv)
    try:
        settings = GatewaySettings()
    except ConfigError as exc:
        print(f"blocklist: {exc}", file=sys.stderr)
        return 2
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=5)
    key = redis_key(settings.NAMESPACE)
    try:
        if args.command == "list":
            for entry in settings.BLOCKED_IPS:
                print(f"{entry}\t(GATEWAY_BLOCKED_IPS)")
            for member in sorted(m.decode() for m in client.smembers(key)):
                print(member)
            return 0
        try:
            entries = [str(parse_entry(entry)) for entry in args.entries]
        except ValueError as exc:
            print(f"blocklist: not an address or CIDR range: {exc}", file=sys.stderr)
            return 2
        if args.command == "add":
            client.sadd(key, *entries)
        else:
            client.srem(key, *entries)
        print(
            f"{args.command}: {', '.join(entries)} (in force within "
            f"{settings.BLOCKLIST_REFRESH_SECONDS:g} s)"
        )
        return 0
    except redis.RedisError as exc:
        print(f"blocklist: Redis unavailable: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
