"""Which network addresses a server-side request may reach: public ones, and the allowed.

A service that connects somewhere a user named (an image registry, a webhook URL) runs inside
the operator's network, so a host on loopback, a private or a link-local address would let that
user reach services no user should see (SSRF). Both image pulls (services/tasks/images.py) and
webhook deliveries (services/tasks/notifications/) classify addresses here.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass

#: Resolves a host name to addresses, as socket.getaddrinfo does (a parameter for tests).
Resolver = Callable[[str], Iterable[str]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def resolve_host(host: str) -> list[str]:
    """Every address the system resolver gives for a host name."""
    return [info[4][0] for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)]


def numeric_address(host: str) -> IPAddress | None:
    """The address a host written as a number stands for (`127.0.0.1`, `[::1]`, `0x7f.1`)."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    try:
        # inet_aton reads the shorthand and hex forms the resolver accepts too.
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def is_public(address: IPAddress) -> bool:
    """Whether the address is a global unicast one (an IPv4-mapped IPv6 address as its IPv4)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def resolve_addresses(host: str, *, resolve: Resolver = resolve_host) -> list[IPAddress]:
    """The addresses of a host name or numeric host; empty when it does not resolve."""
    numeric = numeric_address(host)
    if numeric is not None:
        return [numeric]
    try:
        return [ipaddress.ip_address(a.partition("%")[0]) for a in resolve(host)]
    except (OSError, UnicodeError, ValueError):
        return []


@dataclass(frozen=True)
class AddressAllowlist:
    """What the operator trusts although it is not public: host names and address ranges."""

    #: `host` or `host:port` (lowercase) trusted whatever they resolve to.
    hosts: frozenset[str] = frozenset()
    #: Address ranges allowed although they are not public.
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AddressAllowlist:
        """An allowlist from host names, `host:port` and CIDRs."""
        hosts, networks = set(), []
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                hosts.add(entry.lower())
        return cls(hosts=frozenset(hosts), networks=tuple(networks))

    def trusts_host(self, host: str, port: int | None = None) -> bool:
        """Whether the host (or `host:port`) is listed by name."""
        host = host.lower()
        return host in self.hosts or (port is not None and f"{host}:{port}" in self.hosts)

    def lists(self, address: IPAddress) -> bool:
        """Whether the address is in one of the allowed ranges."""
        return any(address in network for network in self.networks)

    def allows(self, address: IPAddress) -> bool:
        """Whether the address is public or in an allowed range."""
        return is_public(address) or self.lists(address)
