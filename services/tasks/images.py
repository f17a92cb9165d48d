"""Container image references: Docker's reference grammar, the allow-list, where pulls may go."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase

from shared.address_policy import (
    AddressAllowlist,
    Resolver,
    numeric_address,
    resolve_addresses,
    resolve_host,
)

#: Longest reference accepted as a whole (name, tag and digest together).
MAX_REFERENCE_LENGTH = 512
#: Docker's limit on the name (registry and path) of a reference.
MAX_NAME_LENGTH = 255

# The grammar of github.com/distribution/reference (regexp.go), spelled out in Python.
_ALNUM = r"[a-z0-9]+"
_PATH_COMPONENT = rf"{_ALNUM}(?:(?:[._]|__|[-]+){_ALNUM})*"
_PATH = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*", re.ASCII)
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?", re.ASCII
)
_TAG = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
_DIGEST = re.compile(r"(?P<algorithm>[a-z0-9]+(?:[-_+.][a-z0-9]+)*):(?P<hex>[0-9a-f]+)", re.ASCII)
#: Digest algorithms the Docker engine accepts, with their hex lengths.
_DIGEST_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}
_SHAPE = "expected [registry[:port]/]name[:tag][@digest]"


class InvalidImageReference(ValueError):
    """The string is not a Docker image reference; the message says why."""


@dataclass(frozen=True)
class ImageReference:
    """A parsed `[registry[:port]/]path[:tag][@digest]`."""

    domain: str | None
    path: str
    tag: str | None
    digest: str | None

    @property
    def repository(self) -> str:
        """The reference without tag or digest."""
        return f"{self.domain}/{self.path}" if self.domain else self.path


def _split_domain(name: str) -> tuple[str | None, str]:
    # Docker reads the first component as a registry only when it looks like a host, so
    # `Foo/bar` names the registry `Foo` while `foo/bar` is a repository on Docker Hub.
    first, slash, rest = name.partition("/")
    if slash and (any(c in first for c in ".:[") or first == "localhost" or first != first.lower()):
        return first, rest
    return None, name


def parse_image_reference(reference: str) -> ImageReference:
    """Parse a reference by Docker's grammar; raise InvalidImageReference saying what is wrong."""
    if not reference:
        raise InvalidImageReference("Image reference must not be empty.")
    if len(reference) > MAX_REFERENCE_LENGTH:
        raise InvalidImageReference(
            f"Image reference must be at most {MAX_REFERENCE_LENGTH} characters."
        )
    name, at, digest = reference.partition("@")
    tag = None
    colon = name.rfind(":")
    if colon > name.rfind("/"):
        name, tag = name[:colon], name[colon + 1 :]
    domain, path = _split_domain(name)
    if domain is not None and not _DOMAIN.fullmatch(domain):
        raise InvalidImageReference(f"Image registry {domain!r} is not a valid host[:port].")
    if not _PATH.fullmatch(path):
        if _PATH.fullmatch(path.lower()):
            raise InvalidImageReference("Image repository name must be lowercase.")
        raise InvalidImageReference(f"Not a valid image reference: {_SHAPE}.")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidImageReference(f"Image name must be at most {MAX_NAME_LENGTH} characters.")
    if tag is not None and not _TAG.fullmatch(tag):
        raise InvalidImageReference(
            "Image tag must be 1 to 128 letters, digits, '_', '.' or '-', not starting with "
            "'.' or '-'."
        )
    if at:
        parsed = _DIGEST.fullmatch(digest)
        expected = _DIGEST_HEX_LENGTHS.get(parsed["algorithm"]) if parsed else None
        if parsed is None or expected is None or len(parsed["hex"]) != expected:
            raise InvalidImageReference(
                "Image digest must be sha256:<64 hex>, sha384:<96 hex> or sha512:<128 hex>, "
                "in lowercase."
            )
    return ImageReference(domain=domain, path=path, tag=tag, digest=digest if at else None)


def image_allowed(reference: str, patterns: list[str]) -> bool:
    """Whether the allow-list admits the image; an empty list admits every image.

    A pattern may pin a digest (`registry.example.com/ci/tool@sha256:<hex>`): it then admits
    that digest only, with or without a tag written before it.
    """
    if not patterns:
        return True
    parsed = parse_image_reference(reference)
    candidates = [reference, parsed.repository]
    if parsed.digest:
        candidates.append(f"{parsed.repository}@{parsed.digest}")
    return any(fnmatchcase(candidate, pattern) for pattern in patterns for candidate in candidates)


class RegistryRefused(ValueError):
    """The image's registry is a host a pull must not reach; the message says why, never more."""


@dataclass(frozen=True)
class RegistryPolicy:
    """Where the engine may pull images from: public addresses, and what the operator allows.

    The engine pulls from inside the host's network, so a registry on loopback, a private or a
    link-local address would let a task's author make it reach services no user should see.
    """

    allowlist: AddressAllowlist = AddressAllowlist()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> RegistryPolicy:
        """The policy of TASKS_REGISTRY_PRIVATE_ALLOWLIST: host names, `host:port` and CIDRs."""
        return cls(allowlist=AddressAllowlist.parse(entries))

    def check(self, reference: ImageReference, *, resolve: Resolver = resolve_host) -> None:
        """Raise RegistryRefused unless a pull of the image may contact its registry."""
        if reference.domain is None:
            return  # Docker Hub (or the engine's configured mirror): the operator's choice.
        domain = reference.domain.lower()
        if domain.startswith("["):
            host = domain[: domain.index("]") + 1]
        else:
            host = domain.partition(":")[0]
        if domain in self.allowlist.hosts or host in self.allowlist.hosts:
            return
        numeric = numeric_address(host)
        if numeric is not None:
            if self.allowlist.lists(numeric):
                return
            raise RegistryRefused("Image registry must be a host name, not an IP address.")
        if host == "localhost" or host.endswith(".localhost"):
            raise RegistryRefused(f"Image registry {host!r} is not allowed.")
        addresses = resolve_addresses(host, resolve=resolve)
        if not addresses:
            raise RegistryRefused(f"Image registry {host!r} could not be resolved.")
        if not all(self.allowlist.allows(a) for a in addresses):
            # Not which address: the answer must not map the server's network for the caller.
            raise RegistryRefused(f"Image registry {host!r} is not a public host.")
