"""Image references follow Docker's grammar; the allow-list matches reference or repository."""

from __future__ import annotations

import pytest

from services.tasks.images import (
    InvalidImageReference,
    RegistryPolicy,
    RegistryRefused,
    image_allowed,
    parse_image_reference,
)

SHA = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("reference", "parts"),
    [
        ("busybox", (None, "busybox", None, None)),
        ("busybox:1.36", (None, "busybox", "1.36", None)),
        ("library/busybox:latest", (None, "library/busybox", "latest", None)),
        ("my_org/some-app__x.y", (None, "my_org/some-app__x.y", None, None)),
        ("localhost/app", ("localhost", "app", None, None)),
        ("localhost:5000/a/b:c", ("localhost:5000", "a/b", "c", None)),
        ("registry.example.com/team/app@" + SHA, ("registry.example.com", "team/app", None, SHA)),
        ("registry.example.com:443/app:v1@" + SHA, ("registry.example.com:443", "app", "v1", SHA)),
        ("[::1]:5000/app", ("[::1]:5000", "app", None, None)),
        ("Registry.Example/app", ("Registry.Example", "app", None, None)),
        ("busybox:" + "t" * 128, (None, "busybox", "t" * 128, None)),
        ("app@sha512:" + "0" * 128, (None, "app", None, "sha512:" + "0" * 128)),
    ],
)
def test_valid_references_parse_into_their_parts(reference, parts):
    parsed = parse_image_reference(reference)
    assert (parsed.domain, parsed.path, parsed.tag, parsed.digest) == parts


@pytest.mark.parametrize(
    ("reference", "says"),
    [
        ("", "must not be empty"),
        ("Busybox", "lowercase"),
        ("library/BusyBox:1", "lowercase"),
        (" busybox", "Not a valid image reference"),
        ("busybox ", "Not a valid image reference"),
        ("busybox:1 ", "Image tag"),
        ("a___b", "Not a valid image reference"),
        ("-app", "Not a valid image reference"),
        ("app/", "Not a valid image reference"),
        ("foo:bar:baz", "Not a valid image reference"),
        ("bad_host.example/app", "registry"),
        ("busybox:", "Image tag"),
        ("busybox:-x", "Image tag"),
        ("busybox:" + "t" * 129, "Image tag"),
        ("busybox@", "digest"),
        ("busybox@sha256:abc", "digest"),
        ("busybox@md5:" + "a" * 32, "digest"),
        ("busybox@sha256:" + "A" * 64, "digest"),
        ("a/" * 130 + "b", "at most 255"),
        ("a" * 513, "at most 512"),
        ("busy\x00box", "Not a valid image reference"),
        ("büsybox", "Not a valid image reference"),
    ],
)
def test_invalid_references_are_refused_saying_why(reference, says):
    with pytest.raises(InvalidImageReference) as info:
        parse_image_reference(reference)
    assert says in str(info.value)


def test_repository_drops_tag_and_digest():
    assert parse_image_reference("localhost:5000/a/b:c@" + SHA).repository == "localhost:5000/a/b"


@pytest.mark.parametrize(
    ("image", "patterns", "allowed"),
    [
        ("anything/at:all", [], True),
        ("busybox", ["busybox"], True),
        ("busybox:1.36", ["busybox"], True),
        ("busybox@" + SHA, ["busybox"], True),
        ("busybox:1.36", ["busybox:1.35"], False),
        ("busybox:1.36", ["busybox:1.*"], True),
        ("docker.io/library/busybox", ["busybox"], False),
        ("evil.example/busybox", ["busybox"], False),
        ("registry.example.com/ci/tool:2", ["alpine", "registry.example.com/ci/*"], True),
        ("registry.example.com/other/tool", ["registry.example.com/ci/*"], False),
        ("BUSYBOX.example/app", ["busybox.example/*"], False),
    ],
)
def test_the_allow_list_matches_the_reference_or_its_repository(image, patterns, allowed):
    assert image_allowed(image, patterns) is allowed


@pytest.mark.parametrize(
    ("image", "allowed"),
    [
        ("registry.example.com/ci/tool@" + SHA, True),
        ("registry.example.com/ci/tool:2.1@" + SHA, True),
        ("registry.example.com/ci/tool@sha256:" + "b" * 64, False),
        ("registry.example.com/ci/tool:2.1", False),
    ],
)
def test_an_allow_list_entry_may_pin_a_digest(image, allowed):
    assert image_allowed(image, [f"registry.example.com/ci/tool@{SHA}"]) is allowed


def _resolver(table):
    def resolve(host):
        if host not in table:
            raise OSError("no such host")
        return table[host]

    return resolve


PUBLIC_DNS = _resolver(
    {
        "registry.example.com": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"],
        "rebind.example.com": ["93.184.216.34", "10.0.0.7"],
        "internal.example.com": ["192.168.1.10"],
        "metadata.example.com": ["169.254.169.254"],
        "mapped.example.com": ["::ffff:127.0.0.1"],
        "postgres": ["172.18.0.3"],
    }
)


@pytest.mark.parametrize(
    "image",
    [
        "busybox",
        "library/busybox:1.36",
        "registry.example.com/ci/tool:2",
        "registry.example.com:5000/ci/tool@" + SHA,
    ],
)
def test_public_registries_and_docker_hub_may_be_pulled_from(image):
    RegistryPolicy().check(parse_image_reference(image), resolve=PUBLIC_DNS)


@pytest.mark.parametrize(
    ("image", "says"),
    [
        ("127.0.0.1:18555/internal/probe:latest", "not an IP address"),
        ("127.0.0.1:1/probe", "not an IP address"),
        ("[::1]:5000/app", "not an IP address"),
        ("93.184.216.34/app", "not an IP address"),
        ("0x7f.1:6379/app", "not an IP address"),
        ("localhost:5000/app", "'localhost' is not allowed"),
        ("Registry.localhost/app", "is not allowed"),
        ("rebind.example.com/app", "not a public host"),
        ("internal.example.com/app", "not a public host"),
        ("metadata.example.com/app", "not a public host"),
        ("mapped.example.com/app", "not a public host"),
        ("Postgres/app", "not a public host"),
        ("nowhere.invalid/app", "could not be resolved"),
    ],
)
def test_registries_on_ip_literals_loopback_private_or_link_local_hosts_are_refused(image, says):
    with pytest.raises(RegistryRefused, match=says):
        RegistryPolicy().check(parse_image_reference(image), resolve=PUBLIC_DNS)


def test_the_operator_may_allow_private_registries_by_host_or_range():
    policy = RegistryPolicy.parse(["internal.example.com", "127.0.0.1:18555", "10.0.0.0/8"])
    for image in (
        "internal.example.com/app",
        "127.0.0.1:18555/internal/probe",
        "rebind.example.com/app",
        "10.1.2.3:5000/app",
    ):
        policy.check(parse_image_reference(image), resolve=PUBLIC_DNS)
    with pytest.raises(RegistryRefused):
        policy.check(parse_image_reference("127.0.0.1:6379/app"), resolve=PUBLIC_DNS)
