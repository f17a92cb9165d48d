"""Test content: edge cases, a generated large file, and the real `wc` to check counts against."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

#: `wc` reads UTF-8 in this locale; the service follows it (see services/files/analysis.py).
WC_ENV = {"LC_ALL": "C.UTF-8", "PATH": "/usr/bin:/bin"}

EDGE_CASES: dict[str, bytes] = {
    "empty": b"",
    "no-trailing-newline": b"one two\nthree four five",
    "crlf": b"alpha beta\r\ngamma\r\n\r\ndelta \r\n",
    "utf8-multibyte": (
        "héllo wörld\nПривет, мир\n你好 世界\n😀 emoji\u00a0nbsp\u3000ideographic\n".encode()
    ),
    "long-single-line": b" ".join(b"w%d" % i for i in range(400_000)),
    "binary-with-nul": bytes(range(256)) * 64 + b"\x00\x00word\x00 \x00\n\x00",
    "whitespace-controls": b"a\vb\fc\td\re\x00f \x01 \x1b g\x7fh",
    "invalid-utf8": b"\xff\xfe ok \xe2\x80 split \xc3( bad \xed\xa0\x80 surrogate\n",
}


def wc_counts(data: bytes | None = None, *, path: Path | None = None) -> tuple[int, int]:
    """(lines, words) as the real GNU `wc -l -w` counts them, from bytes or a file."""
    argv = ["wc", "-l", "-w"] + ([str(path)] if path is not None else [])
    out = subprocess.run(
        argv, input=data if path is None else None, capture_output=True, env=WC_ENV, check=True
    ).stdout.split()
    return int(out[0]), int(out[1])


_WORD_BYTES = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,;:!?'-"
#: Mostly words and spaces; some line breaks, tabs, CR, VT, FF, NUL and stray high bytes.
_ALPHABET = _WORD_BYTES * 3 + b" " * 30 + b"\n" * 6 + b"\t\r\x0b\x0c\x00\x01\x80\xc3"
_TABLE = bytes(_ALPHABET[i % len(_ALPHABET)] for i in range(256))
#: Plain prose-like text: words, spaces, line breaks and tabs only.
_TEXT_ALPHABET = _WORD_BYTES * 3 + b" " * 30 + b"\n" * 6 + b"\t"
_TEXT_TABLE = bytes(_TEXT_ALPHABET[i % len(_TEXT_ALPHABET)] for i in range(256))
_UTF8_PARAGRAPH = (
    "Ünïcödé paragraph: Привет мир 你好世界 😀 a\u00a0b c\u2009d e\u3000f\u2028g \u0085h\n"
).encode()


def generate_text(size: int, *, seed: int = 1, junk: bool = True) -> bytes:
    """`size` bytes of text-like content: words, whitespace, a UTF-8 paragraph per MiB.

    With `junk`, also every kind of ASCII whitespace, NUL and other controls, and stray bytes
    that are not UTF-8; without, plain text (ASCII words and spaces around the paragraphs).
    """
    rnd = random.Random(seed)
    table = _TABLE if junk else _TEXT_TABLE
    block = 1024 * 1024
    parts = []
    produced = 0
    while produced < size:
        piece = rnd.randbytes(min(block, size - produced)).translate(table)
        # A valid multibyte paragraph in every block, at a random place.
        cut = rnd.randrange(len(piece) + 1)
        piece = (piece[:cut] + _UTF8_PARAGRAPH + piece[cut:])[: min(block, size - produced)]
        parts.append(piece)
        produced += len(piece)
    return b"".join(parts)


def write_generated(
    path: Path, size: int, *, seed: int = 1, junk: bool = True, binary: bool = False
) -> Path:
    """Write generate_text() to `path` a block at a time (bounded memory); return the path.

    With `binary`, uniformly random bytes instead, which is what compressed formats (ZIP, JPEG,
    PNG) look like to a byte counter.
    """
    rnd_seed = seed
    block = 64 * 1024 * 1024
    with path.open("wb") as out:
        written = 0
        while written < size:
            length = min(block, size - written)
            if binary:
                chunk = random.Random(rnd_seed).randbytes(length)
            else:
                chunk = generate_text(length, seed=rnd_seed, junk=junk)
            out.write(chunk)
            written += len(chunk)
            rnd_seed += 1
    return path
