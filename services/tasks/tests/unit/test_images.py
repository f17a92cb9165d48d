"""Image references follow Docker's grammar; the allow-list matches reference or repository."""

from __future__ import annotations

import pytest

from services.tasks.images import InvalidImageReference, image_allowed, parse_image_reference

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
