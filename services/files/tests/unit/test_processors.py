"""The processor registry and the built-in image dimensions processor."""

from __future__ import annotations

import io
import struct
import zlib

import pytest

from services.files import processors
from services.files.analysis import scan_content
from services.files.config import parse_processors


def png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00" + b"\x00\x00\x00" * width)
    return (
        processors.PNG_SIGNATURE
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", pixels * height)[:64]
        + chunk(b"IEND", b"")
    )


def gif(width: int, height: int) -> bytes:
    return b"GIF89a" + struct.pack("<HH", width, height) + b"\x00\x00\x00" + b"\x3b"


def jpeg(width: int, height: int, *, exif_bytes: int = 0) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    app1 = b"\xff\xe1" + struct.pack(">H", exif_bytes + 2) + b"\xab" * exif_bytes
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + app1 + b"\xff\xff" + sof0 + b"\xff\xda\x00\x02" + b"\x00" * 10


def extra_of(data: bytes, read_size: int | None = None) -> dict:
    stream = io.BytesIO(data)
    read = stream.read if read_size is None else (lambda _n: stream.read(read_size))
    report = scan_content(read, processors={"image": processors.image_dimensions})
    return report.extra


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (png(640, 480), {"format": "png", "width": 640, "height": 480}),
        (gif(17, 3), {"format": "gif", "width": 17, "height": 3}),
        (jpeg(1920, 1080), {"format": "jpeg", "width": 1920, "height": 1080}),
    ],
)
def test_image_dimensions_are_read_from_the_header(data, expected):
    assert extra_of(data) == {"image": expected}


def test_jpeg_dimensions_are_found_past_segments_that_span_chunks():
    data = jpeg(300, 200, exif_bytes=60_000)
    for read_size in (1, 7, 4096):
        assert extra_of(data, read_size) == {
            "image": {"format": "jpeg", "width": 300, "height": 200}
        }


def test_image_processor_ignores_what_is_not_an_image():
    assert extra_of(b"plain text\n") == {}
    assert extra_of(b"\xff\xd8\x00garbage") == {}


def test_a_registered_processor_joins_the_built_in_ones():
    def factory(facts):
        return None

    processors.register_processor("test-registered", factory)
    try:
        found = processors.available_processors()
        assert found["test-registered"] is factory
        assert found["image"] is processors.image_dimensions
    finally:
        processors._registered.pop("test-registered")


def test_configured_processors_are_imported_by_path():
    pairs = parse_processors(
        "tally=services.files.tests.plugins:tally, slow=services.files.tests.plugins:slow"
    )
    found = processors.available_processors(pairs)
    assert found["tally"].__name__ == "tally" and found["slow"].__name__ == "slow"


@pytest.mark.parametrize("raw", ["tally", "Tally=a:b", "x=module", "x=a:b:c d"])
def test_malformed_processor_settings_are_refused(raw):
    with pytest.raises(ValueError):
        parse_processors(raw)


def test_an_unimportable_processor_fails_at_start_up():
    with pytest.raises(processors.InvalidProcessor):
        processors.available_processors([("nope", "services.files.tests.plugins:missing")])
    with pytest.raises(processors.InvalidProcessor):
        processors.register_processor("Bad Name", lambda facts: None)
