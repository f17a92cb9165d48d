"""Line and word counts exactly as GNU `wc -l -w` gives them, a chunk at a time, vectorised.

Counts follow GNU coreutils `wc` 9.1 on glibc 2.36 in the C.UTF-8 locale, checked byte for byte
against the real `wc` in the tests:

* lines (`wc -l`): newline bytes, whatever surrounds them (no trailing newline, no extra line).
* words (`wc -w`): the input is read as UTF-8. Separators are the ASCII whitespace bytes
  (TAB, LF, VT, FF, CR, space) and the printable Unicode spaces (U+00A0, U+1680, U+2000-U+200A,
  U+202F, U+205F, U+2060, U+3000). Any other printable character is part of a word. Characters
  that are not printable (ASCII and C1 controls such as NUL, U+2028/U+2029, unassigned code
  points) and bytes that are not valid UTF-8 are transparent: they neither start a word nor end
  one, so `a\\0b` is one word and ` \\0 ` none.

Python 3.11's unicodedata is Unicode 14.0, the version of glibc 2.36's locale data, so "printable"
is computed from it (glibc: everything but categories Cc, Cn, Zl, Zp, Cs).

How: one `bytes.translate` marks every byte (SEPARATOR, WORD or TRANSPARENT), transparent marks
are deleted, and numpy counts the places where a WORD follows a SEPARATOR, so no Python code runs
per byte or per character. UTF-8 is self-synchronising: a character's first byte (0xC2-0xF4)
never occurs inside another character, so numpy checks every lead byte's sequence on its own,
all at once, and a valid one's lead byte takes its character's class, while continuation bytes
always stay transparent. Python's UTF-8 decoder with errors="ignore" keeps exactly these valid
sequences too. numpy (rather than bytes tricks alone) makes this 2-3x faster on text and 6-10x
faster on mixed or binary content than the pure-Python counting it replaced, enough for
counting to keep up with hashing; and numpy releases the GIL, so the two halves of a chunk's
counting (prepare, count) can run in two threads.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import cache, lru_cache

import numpy as np

SEPARATOR, WORD, TRANSPARENT = 0, 1, 2

_ASCII_WHITESPACE = b"\t\n\x0b\x0c\r "
_ASCII_TRANSPARENT = bytes([*range(0x00, 0x09), *range(0x0E, 0x20), 0x7F])
#: Bytes that never occur in text, as libmagic's encoding.c sees it (NUL, most C0 controls, DEL).
_BINARY_BYTES = bytes([*range(0x00, 0x07), *range(0x0E, 0x1B), *range(0x1C, 0x20), 0x7F])
_UNICODE_SEPARATORS = frozenset(
    (0xA0, 0x1680, *range(0x2000, 0x200B), 0x202F, 0x205F, 0x2060, 0x3000)
)
_NOT_PRINTABLE_CATEGORIES = frozenset({"Cc", "Cn", "Zl", "Zp", "Cs"})

#: A byte's mark: what it does to the word count. A lead byte (0xC2-0xF4) is marked TRANSPARENT
#: here and gets its character's class once its sequence is checked; continuation bytes stay
#: TRANSPARENT (their character is marked at its lead), as do bytes that never start a character.
_MARKS = bytes(
    SEPARATOR if b in _ASCII_WHITESPACE else WORD if 0x20 < b < 0x7F else TRANSPARENT
    for b in range(256)
)
_TRANSPARENT_MARK = bytes([TRANSPARENT])
#: Deleting scattered bytes with bytes.translate mispredicts a branch per byte; numpy's compress
#: does not branch but costs more when few are deleted. Past this share, numpy deletes.
_BRANCHLESS_DELETE_SHARE = 1 / 16
_FIRST_LEAD = 0xC2


def _lead_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per lead byte: the sequence's length, and the range its second byte must be in (RFC 3629).

    The second byte's range is what rules out overlong forms (E0, F0), surrogates (ED) and code
    points past U+10FFFF (F4); every later byte is any continuation byte. Length 0: not a lead.
    """
    length = np.zeros(256, np.uint8)
    # An empty range for bytes that start no sequence.
    low = np.full(256, 0xFF, np.uint8)
    high = np.zeros(256, np.uint8)
    low[0xC2:0xF5], high[0xC2:0xF5] = 0x80, 0xBF
    length[0xC2:0xE0] = 2
    length[0xE0:0xF0] = 3
    length[0xF0:0xF5] = 4
    low[0xE0], high[0xED], low[0xF0], high[0xF4] = 0xA0, 0x9F, 0x90, 0x8F
    return length, low, high


_LEAD_LENGTH, _SECOND_LOW, _SECOND_HIGH = _lead_tables()


def character_class(code_point: int) -> int:
    """SEPARATOR, WORD or TRANSPARENT: what a character does to the word count."""
    if code_point < 0x80:
        byte = bytes([code_point])
        if byte in _ASCII_WHITESPACE:
            return SEPARATOR
        return TRANSPARENT if byte in _ASCII_TRANSPARENT else WORD
    if code_point in _UNICODE_SEPARATORS:
        return SEPARATOR
    if unicodedata.category(chr(code_point)) in _NOT_PRINTABLE_CATEGORIES:
        return TRANSPARENT
    return WORD


@cache
def _bmp_classes() -> np.ndarray:
    """character_class of every code point below U+10000 (built once, on first non-ASCII text)."""
    return np.fromiter((character_class(cp) for cp in range(0x10000)), np.uint8, 0x10000)


_astral_class = lru_cache(maxsize=4096)(character_class)


def _classes(code_points: np.ndarray) -> np.ndarray:
    """The class of each character."""
    classes = _bmp_classes().take(np.minimum(code_points, 0xFFFF))
    astral = code_points > 0xFFFF
    if astral.any():
        unique, inverse = np.unique(code_points[astral], return_inverse=True)
        looked_up = np.fromiter(map(_astral_class, unique.tolist()), np.uint8, len(unique))
        classes[astral] = looked_up[inverse]
    return classes


def _valid_sequence_starts(padded: np.ndarray, leads: np.ndarray) -> np.ndarray:
    """The candidate lead bytes (positions in `padded`) that start a valid UTF-8 sequence.

    Checked byte by byte, keeping only the survivors for the next check: in random content most
    candidates fail at their second byte, so the later checks run on few.
    """
    lead_bytes = padded.take(leads)
    second = padded[1:].take(leads)
    leads = np.compress(
        (second >= _SECOND_LOW.take(lead_bytes)) & (second <= _SECOND_HIGH.take(lead_bytes)), leads
    )
    for offset in (2, 3):
        needs_more = _LEAD_LENGTH.take(padded.take(leads)) > offset
        continues = padded[offset:].take(leads) & 0xC0 == 0x80
        leads = np.compress(continues | ~needs_more, leads)
    return leads


def _pending_sequence_start(data: bytes) -> int:
    """Where a UTF-8 sequence that the next bytes may still complete starts; len(data) if none."""
    end = len(data)
    for start in range(end - 1, max(end - 4, -1), -1):
        byte = data[start]
        if byte < 0x80:
            return end
        if byte < _FIRST_LEAD:
            continue  # a continuation byte (or 0xC0/0xC1): look further back for its lead
        length = int(_LEAD_LENGTH[byte])
        if length <= end - start:
            return end
        tail = data[start + 1 :]
        if tail and not _SECOND_LOW[byte] <= tail[0] <= _SECOND_HIGH[byte]:
            return end
        if any(b & 0xC0 != 0x80 for b in tail[1:]):
            return end
        return start
    return end


@dataclass(frozen=True)
class Characters:
    """The valid multibyte UTF-8 characters of some bytes: where they start, how long they are."""

    #: The bytes and three NUL bytes, so that a lead byte's next three bytes are always in bounds.
    padded: np.ndarray
    leads: np.ndarray
    lengths: np.ndarray


@dataclass(frozen=True)
class PreparedChunk:
    """A chunk's UTF-8 structure, found by TextScanner.prepare for TextScanner.count."""

    #: The bytes to count: the chunk after the last one's unfinished character, without its own.
    data: bytes
    #: None when `data` is all ASCII.
    characters: Characters | None
    #: Bytes above 0x7F.
    non_ascii: int


class TextScanner:
    """Counts lines and words like `wc -l -w`; tells whether the bytes are ASCII, UTF-8 or binary.

    `feed(chunk)` is `count(prepare(chunk))`. The halves may run in two threads (numpy releases
    the GIL, so they overlap), as long as each half sees the chunks in order: prepare() keeps
    the lines, the UTF-8 flags and the unfinished character, count() the words and the binary
    flag. Memory per chunk is a few times its size; nothing but up to 3 bytes of an unfinished
    character is kept between chunks.
    """

    def __init__(self) -> None:
        self.lines = 0
        self.words = 0
        #: No byte above 0x7F so far.
        self.ascii = True
        #: Everything so far is valid UTF-8 (a sequence cut at the end is checked in finish()).
        self.utf8 = True
        #: A byte that never occurs in text (NUL, most controls) was seen.
        self.binary = False
        self._in_word = False
        self._pending = b""

    def feed(self, chunk: bytes) -> None:
        """Account for the next bytes."""
        self.count(self.prepare(chunk))

    def prepare(self, chunk: bytes) -> PreparedChunk:
        """Count the chunk's lines and check its UTF-8: where its characters start."""
        self.lines += int(np.count_nonzero(np.frombuffer(chunk, np.uint8) == 0x0A))
        data = self._pending + chunk if self._pending else chunk
        if data.isascii():
            self._pending = b""
            return PreparedChunk(data, None, 0)
        self.ascii = False
        cut = _pending_sequence_start(data)
        data, self._pending = data[:cut], data[cut:]
        padded = np.frombuffer(data + b"\0\0\0", np.uint8)  # a lead's next 3 bytes stay in bounds
        raw = padded[: len(data)]
        # A lead byte followed by a continuation byte: the candidates, found without gathering.
        continued = padded[1 : len(data) + 1] & 0xC0 == 0x80
        leads = _valid_sequence_starts(padded, np.flatnonzero((raw >= _FIRST_LEAD) & continued))
        length = _LEAD_LENGTH.take(padded.take(leads))
        non_ascii = int(np.count_nonzero(raw >= 0x80))
        if self.utf8:
            # Valid exactly when every non-ASCII byte belongs to a valid sequence.
            self.utf8 = non_ascii == int(length.sum(dtype=np.int64))
        return PreparedChunk(data, Characters(padded, leads, length), non_ascii)

    def count(self, prepared: PreparedChunk) -> None:
        """Mark the chunk's bytes, drop the transparent ones and add the runs of WORD marks."""
        data = prepared.data
        marks: bytes | bytearray = data.translate(_MARKS)
        non_ascii_kept = 0
        characters = prepared.characters
        if characters is not None:
            # Decoded here rather than in prepare(): it balances the two threads on binary data.
            classes = _classes(_code_points(characters))
            # Only valid sequences are characters: other lead bytes keep their TRANSPARENT mark.
            marks = bytearray(marks)
            np.frombuffer(marks, np.uint8)[characters.leads] = classes
            non_ascii_kept = int(np.count_nonzero(classes != TRANSPARENT))
        all_marks = np.frombuffer(marks, np.uint8)
        dropped = int(np.count_nonzero(all_marks == TRANSPARENT))
        if not self.binary and dropped > prepared.non_ascii - non_ascii_kept:
            # ASCII controls were dropped too; only some of them (BEL, BS, ESC) occur in text.
            self.binary = len(data.translate(None, _BINARY_BYTES)) != len(data)
        if dropped == 0:
            kept = all_marks
        elif dropped < len(marks) * _BRANCHLESS_DELETE_SHARE:
            kept = np.frombuffer(marks.translate(None, _TRANSPARENT_MARK), np.uint8)
        else:
            kept = np.compress(all_marks != TRANSPARENT, all_marks)
        if not kept.size:
            return
        starts = int(np.count_nonzero(kept[1:] > kept[:-1]))
        if kept[0] == WORD and not self._in_word:
            starts += 1
        self.words += starts
        self._in_word = bool(kept[-1] == WORD)

    def finish(self) -> None:
        """Settle a UTF-8 sequence left incomplete at the end: it is invalid, so transparent."""
        if self._pending:
            self.utf8 = False
            self._pending = b""


def _code_points(characters: Characters) -> np.ndarray:
    """The code points of the characters.

    Branch-free: numpy's where() and masked assignment branch per element, which random
    (binary) content makes unpredictable.
    """
    padded, leads = characters.padded, characters.leads
    length = characters.lengths.astype(np.uint32)
    code_points = padded.take(leads).astype(np.uint32) & (0x7F >> length)
    for offset in (1, 2, 3):
        more = (length > offset).astype(np.uint32)
        low_bits = padded[offset:].take(leads).astype(np.uint32) & 0x3F
        code_points = (code_points << (6 * more)) | (low_bits * more)
    return code_points
