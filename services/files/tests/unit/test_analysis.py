"""One streaming pass computes what wc, sha256sum and libmagic would say about the same bytes."""

from __future__ import annotations

import hashlib
import io
import random

import pytest

from services.files import analysis
from services.files.analysis import ContentUnreadable, scan_content
from services.files.tests.content import EDGE_CASES, generate_text, wc_counts


def scan(data: bytes, **kwargs):
    return scan_content(io.BytesIO(data).read, **kwargs)


@pytest.mark.parametrize("name", sorted(EDGE_CASES))
def test_counts_match_wc_on_edge_cases(name):
    data = EDGE_CASES[name]
    report = scan(data)
    assert (report.line_count, report.word_count) == wc_counts(data)
    assert report.size == len(data)
    assert report.sha256 == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("kind", ["mixed", "random"])
def test_megabytes_match_wc_and_sha256_in_one_threaded_pass(kind):
    if kind == "random":
        data = random.Random(4).randbytes(6 * 1024 * 1024 + 7)
    else:
        data = generate_text(12 * 1024 * 1024, seed=3)
    report = scan(data)
    assert (report.line_count, report.word_count) == wc_counts(data)
    assert report.sha256 == hashlib.sha256(data).hexdigest()
    assert report.size == len(data)


@pytest.mark.parametrize(
    ("data", "mime", "encoding"),
    [
        (b"just ascii\n", "text/plain", "ascii"),
        ("ünïcödé\n".encode(), "text/plain", "utf-8"),
        (b"a,b,c\n1,2,3\n", "text/plain", "ascii"),
        (b"\x00\x01\x02 binary", "application/octet-stream", None),
        (b"", "application/x-empty", None),
        ("utf-16 text\n".encode("utf-16"), "text/plain", "utf-16le"),
        (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n", "application/pdf", None),
    ],
)
def test_mime_type_and_encoding_come_from_the_content(data, mime, encoding):
    report = scan(data, content_type="application/x-whatever")
    assert (report.mime_type, report.encoding) == (mime, encoding)


def test_text_that_turns_binary_after_the_first_chunk_is_not_called_text():
    data = b"plain words\n" * 200_000 + b"\x00\x00\x00"
    report = scan(data)
    assert report.encoding is None
    assert report.mime_type == "application/octet-stream"


def test_processors_see_every_chunk_and_their_results_land_in_extra():
    seen = []

    class Recorder:
        def feed(self, chunk):
            seen.append(len(chunk))

        def finish(self):
            return {"total": sum(seen)}

    data = b"x" * (3 * 1024 * 1024 + 5)
    report = scan(data, processors={"recorder": lambda facts: Recorder(), "none": lambda f: None})
    assert report.extra == {"recorder": {"total": len(data)}}
    assert len(seen) == 4


def test_a_failing_processor_is_reported_without_failing_the_pass():
    class Broken:
        def feed(self, chunk):
            raise ValueError("boom")

        def finish(self):
            return {"never": True}

    report = scan(b"some text\n", processors={"broken": lambda facts: Broken()})
    assert report.extra == {"broken": {"error": "ValueError: boom"}}
    assert report.line_count == 1


def test_a_read_error_surfaces_as_content_unreadable():
    def read(_size):
        raise ConnectionError("storage went away")

    with pytest.raises(ContentUnreadable) as raised:
        scan_content(read)
    assert isinstance(raised.value.__cause__, ConnectionError)


def test_a_bug_while_preparing_a_chunk_is_not_taken_for_unreadable_storage(monkeypatch):
    def broken(self, chunk):
        raise ValueError("bug")

    monkeypatch.setattr(analysis.TextScanner, "prepare", broken)
    with pytest.raises(ValueError, match="bug"):
        scan(b"some text\n")
