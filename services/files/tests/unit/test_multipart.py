"""The streaming multipart reader: any split of the body, and every way a body can be wrong."""

from __future__ import annotations

import io

import pytest

from services.files.multipart import MAX_OVERHEAD_BYTES, MalformedMultipart, MultipartUpload

BOUNDARY = "----dockyard"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def part(name: str, content: bytes, filename: str | None = None) -> bytes:
    """One part, preceded by its boundary."""
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    return (
        f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + content + b"\r\n"
    )


def end() -> bytes:
    """The closing boundary."""
    return f"--{BOUNDARY}--\r\n".encode()


class Trickle(io.RawIOBase):
    """A stream that hands out at most `step` bytes per read, like a slow network."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data = data
        self.step = step

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        chunk, self.data = self.data[: self.step], self.data[self.step :]
        return chunk


def read_upload(body: bytes, step: int = 1 << 20, content_type: str = CONTENT_TYPE):
    """Read a body the way the service does; return the file part and its content."""
    upload = MultipartUpload(Trickle(body, step), content_type=content_type, content_length=None)
    incoming = upload.open_file()
    chunks = []
    while chunk := incoming.stream.read(1000):
        chunks.append(chunk)
    upload.finish()
    return incoming, b"".join(chunks)


@pytest.mark.parametrize("step", [1, 7, 64, 4096, 1 << 20])
def test_the_file_survives_any_split_of_the_body(step):
    content = (b"\r\n--" + BOUNDARY.encode()[:-1] + b"\r\r\n\n") * 50 + bytes(range(256))
    body = part("note", b"before") + part("file", content, "a.bin") + part("x", b"after") + end()
    incoming, read = read_upload(body, step)
    assert read == content
    assert incoming.filename == "a.bin"


def test_the_part_content_type_is_reported():
    body = (
        (
            f"--{BOUNDARY}\r\n"
            'Content-Disposition: form-data; name="file"; filename="p.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + b"PNG\r\n"
        + end()
    )
    incoming, read = read_upload(body)
    assert incoming.content_type == "image/png"
    assert read == b"PNG"


def test_an_empty_file_is_a_file():
    incoming, read = read_upload(part("file", b"", "empty.txt") + end())
    assert read == b"" and incoming.filename == "empty.txt"


@pytest.mark.parametrize(
    "body",
    [
        part("other", b"no file here") + end(),
        part("file", b"a field, not a file") + end(),
        end(),
        b"",
    ],
)
def test_a_body_without_a_file_part_is_refused(body):
    upload = MultipartUpload(io.BytesIO(body), content_type=CONTENT_TYPE, content_length=None)
    with pytest.raises(MalformedMultipart):
        upload.open_file()


def test_a_truncated_body_is_refused_while_reading():
    body = part("file", b"x" * 10_000, "t.bin") + end()
    with pytest.raises(MalformedMultipart):
        read_upload(body[:5000])
    with pytest.raises(MalformedMultipart):
        read_upload(body[:-3])


def test_a_second_file_is_refused_at_the_end():
    body = part("file", b"one", "1.txt") + part("file", b"two", "2.txt") + end()
    with pytest.raises(MalformedMultipart, match="more than one"):
        read_upload(body)


def test_large_fields_are_refused():
    body = part("note", b"n" * (MAX_OVERHEAD_BYTES + 1)) + part("file", b"f", "f") + end()
    with pytest.raises(MalformedMultipart, match="limited"):
        read_upload(body)


def test_too_many_parts_are_refused():
    body = part("n", b"") * 20 + part("file", b"f", "f") + end()
    with pytest.raises(MalformedMultipart, match="parts"):
        read_upload(body)


def test_endless_part_headers_are_refused():
    body = f"--{BOUNDARY}\r\nX-Long: ".encode() + b"h" * (2 << 20)
    upload = MultipartUpload(io.BytesIO(body), content_type=CONTENT_TYPE, content_length=None)
    with pytest.raises(MalformedMultipart):
        upload.open_file()


@pytest.mark.parametrize(
    "content_type", [None, "application/json", "multipart/form-data", "multipart/mixed; boundary=x"]
)
def test_other_content_types_are_refused(content_type):
    with pytest.raises(MalformedMultipart):
        MultipartUpload(io.BytesIO(b""), content_type=content_type, content_length=None)


def test_finish_refuses_a_file_that_was_not_read_to_its_end():
    body = part("file", b"x" * 100, "f") + end()
    upload = MultipartUpload(io.BytesIO(body), content_type=CONTENT_TYPE, content_length=None)
    upload.open_file().stream.read(10)
    with pytest.raises(MalformedMultipart):
        upload.finish()
