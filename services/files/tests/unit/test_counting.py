"""Line and word counts equal the real `wc -l -w`, however the bytes are cut into chunks."""

from __future__ import annotations

import random

import pytest

from services.files import counting
from services.files.counting import TextScanner, character_class
from services.files.tests.content import EDGE_CASES, generate_text, wc_counts

TRICKY_PIECES = [
    b"a", b"Z", b" ", b"\n", b"\t", b"\r", b"\x0b", b"\x0c", b"\x00", b"\x07", b"\x1b",
    b"\x7f", b"\xc2\x85", b"\xc2\xa0", b"\xe1\x9a\x80", b"\xe2\x80\x87", b"\xe2\x80\x8b",
    b"\xe2\x80\xa8", b"\xe2\x81\xa0", b"\xe3\x80\x80", b"\xef\xbb\xbf", b"\xcd\xb8",
    b"\xf3\xa0\x80\x81", b"\xf4\x8f\xbf\xbf", b"\xf0\x9f\x98\x80", b"\xe2", b"\x80",
    b"\xff", b"\xc0\x80", b"\xed\xa0\x80", "é".encode(), "世".encode(), b"\xf0\x90",
    b"\xf4\x90\x80\x80", b"\xe0\x80\x80", b"\xf0\x80\x80\x80", b"\xf5\x80", b"\xdf",
]  # fmt: skip


def scanned(data: bytes, step: int) -> TextScanner:
    scanner = TextScanner()
    for start in range(0, len(data), step):
        scanner.feed(data[start : start + step])
    scanner.finish()
    return scanner


def expected_flags(data: bytes) -> tuple[bool, bool, bool]:
    """(ascii, utf8, binary) as Python's own decoder and libmagic's list of non-text bytes say."""
    try:
        data.decode("utf-8")
        utf8 = True
    except UnicodeDecodeError:
        utf8 = False
    binary = any(b in counting._BINARY_BYTES for b in data)
    return data.isascii(), utf8, binary


def tricky_samples(seed: int, count: int) -> list[bytes]:
    rnd = random.Random(seed)
    samples = []
    for _ in range(count):
        samples.append(b"".join(rnd.choice(TRICKY_PIECES) for _ in range(rnd.randint(0, 80))))
        samples.append(rnd.randbytes(rnd.randint(0, 300)))
    return samples


@pytest.fixture(params=["translate", "numpy"])
def delete_with(request, monkeypatch):
    """Run a test once with each way of deleting transparent marks."""
    share = 2.0 if request.param == "translate" else 0.0
    monkeypatch.setattr(counting, "_BRANCHLESS_DELETE_SHARE", share)
    return request.param


@pytest.mark.parametrize("name", sorted(EDGE_CASES))
def test_counts_match_wc_on_edge_cases(name, delete_with):
    data = EDGE_CASES[name]
    scanner = scanned(data, 1024 * 1024)
    assert (scanner.lines, scanner.words) == wc_counts(data)


@pytest.mark.parametrize("name", sorted(EDGE_CASES))
def test_counts_do_not_depend_on_where_chunks_end(name):
    data = EDGE_CASES[name][:20_000]
    expected = wc_counts(data)
    for step in (1, 2, 3, 5, 4096):
        scanner = scanned(data, step)
        assert (scanner.lines, scanner.words) == expected, step


def test_counts_and_flags_match_on_random_mixtures_of_tricky_characters(delete_with):
    rnd = random.Random(5)
    for data in tricky_samples(5, 150):
        scanner = scanned(data, rnd.choice((1, 2, 3, 7, 64, 4096)))
        assert (scanner.lines, scanner.words) == wc_counts(data), data
        assert (scanner.ascii, scanner.utf8, scanner.binary) == expected_flags(data), data


@pytest.mark.parametrize("kind", ["text", "mixed", "random"])
def test_megabytes_of_each_kind_of_content_match_wc(kind):
    if kind == "random":
        data = random.Random(9).randbytes(3 * 1024 * 1024)
    else:
        data = generate_text(3 * 1024 * 1024, seed=3, junk=kind == "mixed")
    scanner = scanned(data, 1024 * 1024)
    assert (scanner.lines, scanner.words) == wc_counts(data)
    assert (scanner.ascii, scanner.utf8, scanner.binary) == expected_flags(data)


def test_a_character_cut_at_the_end_is_invalid_and_counts_as_nothing():
    scanner = scanned("word é".encode()[:-1], 1)
    assert (scanner.words, scanner.utf8, scanner.ascii) == (1, False, False)


@pytest.mark.parametrize(
    ("character", "expected"),
    [
        (" ", counting.SEPARATOR),
        ("\u00a0", counting.SEPARATOR),
        ("\u2060", counting.SEPARATOR),
        ("\u3000", counting.SEPARATOR),
        ("a", counting.WORD),
        ("\u200b", counting.WORD),
        ("\U000f0000", counting.WORD),
        ("\x00", counting.TRANSPARENT),
        ("\x85", counting.TRANSPARENT),
        ("\u2028", counting.TRANSPARENT),
        ("\U000e0000", counting.TRANSPARENT),
    ],
)
def test_characters_are_separators_word_characters_or_transparent(character, expected):
    assert character_class(ord(character)) == expected
