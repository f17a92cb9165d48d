"""The shared multipart pull decoder: pieces of any size in, parts and their data out."""

from __future__ import annotations

import pytest

from shared.multipart import (
    NEED_DATA,
    READ_SIZE,
    Data,
    Epilogue,
    Field,
    File,
    HeadersTooLong,
    MultipartError,
    Preamble,
    PullDecoder,
    TooManyParts,
    boundary_of,
)

BOUNDARY = b"b0und"


def body(*parts: tuple[str, bytes, str | None]) -> bytes:
    """A multipart body of (name, content, filename) parts."""
    out = b""
    for name, content, filename in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += b"--" + BOUNDARY + f"\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
        out += content + b"\r\n"
    return out + b"--" + BOUNDARY + b"--\r\n"


def decode(data: bytes, piece: int, max_parts: int = 5) -> list:
    """Feed `data` in pieces of `piece` bytes; every event, Data merged per part."""
    decoder = PullDecoder(BOUNDARY, max_parts=max_parts)
    events, offset = [], 0
    while True:
        event = decoder.next_event()
        if event is NEED_DATA:
            decoder.feed(data[offset : offset + piece])
            offset += piece
            continue
        if isinstance(event, Data) and events and isinstance(events[-1], bytes):
            events[-1] += event.data
        else:
            events.append(event.data if isinstance(event, Data) else event)
        if isinstance(event, Epilogue):
            return events


@pytest.mark.parametrize("piece", [1, 5, 1000, 10 * READ_SIZE])
def test_parts_and_their_data_come_out_whatever_the_pieces(piece):
    content = b"\r\n--b0un\r\n" * 3 + bytes(range(256)) * 2000  # ~0.5 MB, boundary-like bytes
    events = decode(body(("note", b"hi", None), ("file", content, "a.bin")), piece)
    kinds = [type(event).__name__ for event in events]
    assert kinds == ["Preamble", "Field", "bytes", "File", "bytes", "Epilogue"]
    assert isinstance(events[0], Preamble)
    assert isinstance(events[1], Field) and events[1].name == "note" and events[2] == b"hi"
    assert isinstance(events[3], File) and events[3].filename == "a.bin"
    assert events[4] == content


@pytest.mark.parametrize("split", range(1, 14))
def test_a_last_part_is_exact_however_its_closing_crlf_and_boundary_are_split(split):
    data = body(("file", b"abc\xff", "a"))
    end = data.index(b"\xff\r\n") + 1
    pieces = [data[:end], *(data[end + i : end + i + split] for i in range(0, 40, split))]
    decoder, content = PullDecoder(BOUNDARY, max_parts=2), b""
    while True:
        event = decoder.next_event()
        if event is NEED_DATA:
            decoder.feed(pieces.pop(0) if pieces else b"")
        elif isinstance(event, Data):
            content += event.data
        elif isinstance(event, Epilogue):
            break
    assert content == b"abc\xff"


def test_one_piece_larger_than_the_buffer_is_taken_in_slices():
    decoder = PullDecoder(BOUNDARY, max_parts=2, max_buffered=4 * READ_SIZE)
    decoder.feed(body(("file", b"x" * (20 * READ_SIZE), "big")))
    assert decoder.bytes_fed > 4 * READ_SIZE
    assert isinstance(decoder.next_event(), Preamble)


def test_feeding_before_the_last_piece_was_pulled_is_a_bug():
    decoder = PullDecoder(BOUNDARY, max_parts=2)
    decoder.feed(b"--b0und")
    with pytest.raises(RuntimeError):
        decoder.feed(b"\r\n")


def test_a_truncated_body_is_a_multipart_error():
    data = body(("file", b"content", "a"))[:-20]
    with pytest.raises(MultipartError, match="malformed or truncated"):
        decode(data, 64)


def test_more_parts_than_allowed_is_too_many_parts():
    with pytest.raises(TooManyParts):
        decode(body(*[(f"p{i}", b"v", None) for i in range(3)]), 64, max_parts=2)


def test_headers_longer_than_the_buffer_are_refused():
    decoder = PullDecoder(BOUNDARY, max_parts=2, max_buffered=1024)
    decoder.feed(b'--b0und\r\nContent-Disposition: form-data; name="' + b"n" * 5000)
    with pytest.raises(HeadersTooLong):
        while decoder.next_event() is not NEED_DATA:
            pass


@pytest.mark.parametrize(
    ("content_type", "boundary"),
    [
        ("multipart/form-data; boundary=abc", b"abc"),
        ('multipart/form-data; boundary="a b"', b"a b"),
    ],
)
def test_the_boundary_comes_from_the_content_type(content_type, boundary):
    assert boundary_of(content_type) == boundary


@pytest.mark.parametrize(
    "content_type",
    [None, "", "application/json", "multipart/form-data", "multipart/form-data; boundary=é"],
)
def test_a_content_type_without_an_ascii_boundary_is_refused(content_type):
    with pytest.raises(MultipartError):
        boundary_of(content_type)
