"""Filenames, media types and download names: pure functions, no I/O."""

from __future__ import annotations

import pytest

from services.files.api import content_disposition
from services.files.naming import (
    clean_original_filename,
    normalize_content_type,
    sanitize_filename,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("report.pdf", "report.pdf"),
        ("../../../etc/shadow", "shadow"),
        ("..\\..\\boot.ini", "boot.ini"),
        ("/", "file"),
        ("...", "file"),
        ("a\x00b\x1fc\x7fd.txt", "a b c d.txt"),
        ("line\nbreak\u2028here.txt", "line break here.txt"),
        ("zero\u200bwidth.txt", "zerowidth.txt"),
        ("  spaced   out  .txt  ", "spaced out .txt"),
        ("nul.tar.gz", "_nul.tar.gz"),
        ("lpt9", "_lpt9"),
        ("e\u0301cole.txt", "école.txt"),
        ("日本語のファイル.txt", "日本語のファイル.txt"),
    ],
)
def test_sanitize_filename(raw, expected):
    assert sanitize_filename(raw) == expected


def test_sanitize_filename_bounds_the_name_in_utf8_bytes_and_keeps_the_extension():
    name = sanitize_filename("😀" * 100 + ".jpeg")
    assert len(name.encode()) <= 255
    assert name.endswith(".jpeg")
    assert sanitize_filename("x" * 1000) == "x" * 255
    long_extension = sanitize_filename("a." + "b" * 400)
    assert len(long_extension.encode()) <= 255


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\ann\\report.pdf", "report.pdf"),
        ("invoice\u202efdp.exe", "invoicefdp.exe"),
        ("\u2066\u2067\u2068a\u2069\u202a\u202b\u202c\u202d\u200e\u200fb.txt", "ab.txt"),
        ("a\x00b\x1bc\x7fd\u0085e.txt", "a b c d e.txt"),
        ("bad\udcffsurrogate", "badsurrogate"),
        ("  \t trimmed  .txt \n", "trimmed .txt"),
        ("../..", "file"),
        ("\u202e", "file"),
        ("", "file"),
        ('what?<is>"this"*.txt', 'what?<is>"this"*.txt'),
        ("CON.txt", "CON.txt"),
        ("e\u0301cole.txt", "école.txt"),
    ],
)
def test_clean_original_filename_keeps_only_the_visible_last_path_part(raw, expected):
    assert clean_original_filename(raw) == expected


def test_clean_original_filename_is_bounded_and_keeps_the_extension():
    cleaned = clean_original_filename("n" * 5000 + ".txt")
    assert len(cleaned.encode()) <= 255 and cleaned.endswith(".txt")
    assert clean_original_filename(clean_original_filename("a/\u202eb")) == "b"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("text/plain", "text/plain"),
        ("Text/HTML; charset=UTF-8", "text/html"),
        ("application/vnd.ms-excel", "application/vnd.ms-excel"),
        (None, "application/octet-stream"),
        ("", "application/octet-stream"),
        ("nonsense", "application/octet-stream"),
        ("text/plain\r\nX-Injected: 1", "application/octet-stream"),
    ],
)
def test_normalize_content_type(raw, expected):
    assert normalize_content_type(raw) == expected


def test_content_disposition_has_an_ascii_fallback_and_the_exact_name():
    assert content_disposition("plain.txt") == (
        "attachment; filename=\"plain.txt\"; filename*=UTF-8''plain.txt"
    )
    assert content_disposition('qu"o\\te.txt') == (
        "attachment; filename=\"qu_o_te.txt\"; filename*=UTF-8''qu%22o%5Cte.txt"
    )
    assert content_disposition("日本.txt") == (
        "attachment; filename=\".txt\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC.txt"
    )
