"""One streaming pass over a file's bytes: size, sha256, wc-compatible counts, MIME type, encoding.

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
"""

from __future__ import annotations

import codecs
import ctypes
import ctypes.util
import hashlib
import logging
import queue
import re
import sys
import threading
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger(__name__)

#: Bytes read from storage at a time; a handful of these is all a pass holds in memory.
READ_SIZE = 1024 * 1024
#: Chunks read ahead of the counting (the reading thread blocks when this many wait).
READ_AHEAD = 4
#: Slice of a chunk counted at once: bounds the temporary objects the word count allocates.
COUNT_SLICE = 256 * 1024

_ASCII_WHITESPACE = frozenset(b"\t\n\x0b\x0c\r ")
_ASCII_TRANSPARENT = bytes([*range(0x00, 0x09), *range(0x0E, 0x20), 0x7F])
#: ASCII fast path: whitespace -> 0, anything kept -> 1 (transparent bytes are deleted).
_ASCII_MARKS = bytes(0 if b in _ASCII_WHITESPACE else 1 for b in range(256))
#: Before decoding: whitespace -> space, transparent ASCII -> 0xFF (never valid UTF-8, so the
#: decoder drops it and it still breaks a multibyte sequence, as the original byte did).
_PRE_DECODE = bytes(
    0x20 if b in _ASCII_WHITESPACE else 0xFF if b in _ASCII_TRANSPARENT else b for b in range(256)
)
#: After decoding and re-encoding: space -> 0, any other byte -> 1.
_SPACE_MARKS = bytes(0 if b == 0x20 else 1 for b in range(256))
#: ASCII -> 0, anything above -> 1: where the non-ASCII runs of a slice are.
_HIGH_FLAGS = bytes(0 if b < 0x80 else 1 for b in range(256))
#: A slice with at most this many non-ASCII bytes has its ASCII stretches counted on the fast
#: path and only its non-ASCII runs decoded; denser slices are decoded whole.
_SPARSE_LIMIT = 1024
_UNICODE_SEPARATORS = (0xA0, 0x1680, *range(0x2000, 0x200B), 0x202F, 0x205F, 0x2060, 0x3000)
_MULTIBYTE_SEPARATOR = re.compile(
    b"|".join(re.escape(chr(cp).encode()) for cp in _UNICODE_SEPARATORS)
)
_MULTIBYTE_SEPARATOR_PREFIXES = (
    b"\xc2\xa0",
    b"\xe1\x9a\x80",
    b"\xe2\x80",
    b"\xe2\x81",
    b"\xe3\x80",
)
_NOT_PRINTABLE_CATEGORIES = frozenset({"Cc", "Cn", "Zl", "Zp", "Cs"})
#: Bytes that never occur in text, as libmagic's encoding.c sees it (NUL, most C0 controls, DEL).
_BINARY_BYTES = bytes([*range(0x00, 0x07), *range(0x0E, 0x1B), *range(0x1C, 0x20), 0x7F])
_TEXT_CHARSETS_WITH_NUL = ("utf-16", "utf-32")


def _not_printable_bmp() -> re.Pattern[str]:
    """A regex of the non-printable characters of the Basic Multilingual Plane (from U+0080)."""
    ranges: list[list[int]] = []
    for cp in range(0x80, 0x10000):
        if unicodedata.category(chr(cp)) in _NOT_PRINTABLE_CATEGORIES:
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1][1] = cp
            else:
                ranges.append([cp, cp])
    # One BMP-only class compiles to a bitmap; astral ranges would make every test a range scan.
    parts = "".join(
        f"\\u{a:04x}" if a == b else f"\\u{a:04x}-\\u{b:04x}" for a, b in ranges if a < 0xD800
    ) + "".join(f"\\u{a:04x}-\\u{b:04x}" for a, b in ranges if a >= 0xE000)
    return re.compile(f"[{parts}]+")


_NOT_PRINTABLE_BMP = _not_printable_bmp()
_ASTRAL = re.compile("[\U00010000-\U0010ffff]+")


def _printable_astral(match: re.Match[str]) -> str:
    return "".join(
        c for c in match.group() if unicodedata.category(c) not in _NOT_PRINTABLE_CATEGORIES
    )


def _drop_not_printable(text: str) -> str:
    text = _NOT_PRINTABLE_BMP.sub("", text)
    if _ASTRAL.search(text):
        text = _ASTRAL.sub(_printable_astral, text)
    return text


class TextScanner:
    """Counts words like `wc -w` and tells whether the bytes are ASCII, UTF-8 or binary."""

    def __init__(self) -> None:
        self.words = 0
        #: No byte above 0x7F so far.
        self.ascii = True
        #: Everything so far is valid UTF-8 (a sequence cut at the end is checked in finish()).
        self.utf8 = True
        #: A byte that never occurs in text (NUL, most controls) was seen.
        self.binary = False
        self._in_word = False
        self._words_decoder = codecs.getincrementaldecoder("utf-8")("ignore")
        self._strict_decoder = codecs.getincrementaldecoder("utf-8")("strict")

    def feed(self, chunk: bytes) -> None:
        """Account for the next bytes."""
        if chunk.isascii() and not self._words_decoder.getstate()[0]:
            self._feed_ascii(chunk)
            return
        self.ascii = False
        if self.utf8:
            self._check_utf8(chunk)
        for start in range(0, len(chunk), COUNT_SLICE):
            piece = chunk[start : start + COUNT_SLICE]
            flags = piece.translate(_HIGH_FLAGS)
            if flags.count(1) <= _SPARSE_LIMIT:
                self._feed_sparse(piece, flags)
            else:
                if not self.binary:
                    self.binary = len(piece.translate(None, _BINARY_BYTES)) != len(piece)
                self._feed_multibyte(piece)

    def finish(self) -> None:
        """Settle a UTF-8 sequence left incomplete at the end."""
        if self.utf8 and self._strict_decoder.getstate()[0]:
            self.utf8 = False

    def _check_utf8(self, chunk: bytes) -> None:
        try:
            self._strict_decoder.decode(chunk)
        except UnicodeDecodeError:
            self.utf8 = False

    def _feed_ascii(self, chunk: bytes) -> None:
        for start in range(0, len(chunk), COUNT_SLICE):
            self._count(self._ascii_marks(chunk[start : start + COUNT_SLICE]))

    def _ascii_marks(self, piece: bytes) -> bytes:
        """0/1 marks of an ASCII stretch (transparent bytes dropped); notes binary bytes."""
        marks = piece.translate(_ASCII_MARKS, _ASCII_TRANSPARENT)
        if not self.binary and len(marks) != len(piece):
            # Only some transparent bytes (BEL, BS, ESC) are allowed in text: look closer.
            self.binary = len(piece.translate(None, _BINARY_BYTES)) != len(piece)
        return marks

    def _feed_multibyte(self, piece: bytes) -> None:
        text = self._words_decoder.decode(piece.translate(_PRE_DECODE))
        # Python's non-printables include glibc's, so printable text needs no filtering.
        if not text.isprintable():
            text = _drop_not_printable(text)
        data = text.encode()
        if any(prefix in data for prefix in _MULTIBYTE_SEPARATOR_PREFIXES):
            data = _MULTIBYTE_SEPARATOR.sub(b" ", data)
        self._count(data.translate(_SPACE_MARKS))

    def _feed_sparse(self, piece: bytes, flags: bytes) -> None:
        """Fast-path the ASCII stretches of a slice and decode only its few non-ASCII runs.

        A UTF-8 character is all non-ASCII bytes, so each lies within one run, and an ASCII
        byte after an unfinished sequence makes it invalid (transparent): runs are independent.
        """
        marks = []
        pos, end = 0, len(piece)
        while pos < end:
            start = flags.find(1, pos)
            if start < 0:
                start = end
            if start > pos:
                if self._words_decoder.getstate()[0]:
                    self._words_decoder.reset()
                marks.append(self._ascii_marks(piece[pos:start]))
            if start == end:
                break
            stop = flags.find(0, start)
            if stop < 0:
                stop = end
            marks.append(self._run_marks(piece[start:stop]))
            pos = stop
        self._count(b"".join(marks))

    def _run_marks(self, run: bytes) -> bytes:
        text = self._words_decoder.decode(run)
        if not text:
            return b""
        if text.isprintable():
            return b"\x01"
        data = _drop_not_printable(text).encode()
        return _MULTIBYTE_SEPARATOR.sub(b" ", data).translate(_SPACE_MARKS)

    def _count(self, marks: bytes) -> None:
        """Add the runs of 1s in a string of 0/1 bytes, continuing a run from the last call."""
        if not marks:
            return
        bits = int.from_bytes(marks, "little")
        # Each run of 1s differs from its neighbour at its start and just past its end.
        runs = (bits ^ (bits << 8)).bit_count() // 2
        if self._in_word and marks[0]:
            runs -= 1
        self.words += runs
        self._in_word = marks[-1] == 1


class _Magic:
    """libmagic through python-magic, one handle per thread (handles are not thread-safe)."""

    _local = threading.local()

    @classmethod
    def detect(cls, head: bytes) -> tuple[str, str]:
        """(MIME type, charset) of a file starting with `head`."""
        handle = getattr(cls._local, "handle", None)
        if handle is None:
            import magic

            handle = cls._local.handle = magic.Magic(mime=True, mime_encoding=True)
        described = handle.from_buffer(head)
        mime, _, params = described.partition(";")
        charset = params.strip().removeprefix("charset=")
        return mime.strip() or "application/octet-stream", charset


def detect_mime(head: bytes) -> tuple[str, str]:
    """libmagic's (MIME type, charset) for content that starts with `head`."""
    return _Magic.detect(head)


@dataclass(frozen=True)
class FileFacts:
    """What a processor factory may look at before the content streams through."""

    filename: str
    #: The type the uploader declared.
    content_type: str
    size: int
    #: The type libmagic detected from the first chunk.
    mime_type: str
    #: The first chunk (at most READ_SIZE bytes).
    head: bytes


class Processor(Protocol):
    """A streaming computation over a file's bytes; its result lands in the file's `extra`."""

    def feed(self, chunk: bytes) -> None:
        """Take the next bytes."""

    def finish(self) -> dict[str, Any] | None:
        """The result (JSON-ready), or None to record nothing."""


#: Builds a processor for one file, or returns None when the file is not its kind.
ProcessorFactory = Callable[[FileFacts], Processor | None]


@dataclass(frozen=True)
class ContentReport:
    """Everything one pass learned about a file's content."""

    size: int
    sha256: str
    line_count: int
    word_count: int
    mime_type: str
    encoding: str | None
    extra: dict[str, Any] = field(default_factory=dict)


class ContentUnreadable(Exception):
    """Reading the stored content failed; `__cause__` is the storage's exception."""


def _encoding(scanner: TextScanner, size: int, mime: str, charset: str) -> str | None:
    """ASCII or UTF-8 when the whole stream is; otherwise libmagic's charset for text types."""
    if size == 0:
        return None
    if not scanner.binary and scanner.ascii:
        return "ascii"
    if not scanner.binary and scanner.utf8:
        return "utf-8"
    charset = charset.lower()
    if charset in ("", "binary", "unknown-8bit", "us-ascii", "utf-8"):
        return None
    if charset.startswith(_TEXT_CHARSETS_WITH_NUL):
        return charset
    # An 8-bit charset is a guess from the first chunk: believe it only for a text type.
    return charset if mime.startswith("text/") and not scanner.binary else None


class _ReadAhead:
    """Reads and hashes chunks in a thread (both release the GIL) while the caller counts."""

    _END = object()

    def __init__(self, read: Callable[[int], bytes]) -> None:
        self._read = read
        self._queue: queue.Queue[Any] = queue.Queue(READ_AHEAD)
        self._stop = threading.Event()
        self.sha256 = hashlib.sha256()
        self.size = 0
        self._thread = threading.Thread(target=self._run, name="files-read-ahead", daemon=True)

    def _read_chunk(self) -> bytes:
        """READ_SIZE bytes, fewer only at the end (a stream may return less than asked)."""
        chunk = self._read(READ_SIZE)
        if not chunk or len(chunk) == READ_SIZE:
            return chunk
        parts = [chunk]
        filled = len(chunk)
        while filled < READ_SIZE and (more := self._read(READ_SIZE - filled)):
            parts.append(more)
            filled += len(more)
        return b"".join(parts)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                chunk = self._read_chunk()
                if not chunk:
                    break
                self.sha256.update(chunk)
                self.size += len(chunk)
                self._put(chunk)
            self._put(self._END)
        except BaseException as exc:  # noqa: BLE001 - handed to the consuming thread
            self._put(exc)

    def _put(self, item: Any) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def __iter__(self) -> Iterator[bytes]:
        self._thread.start()
        try:
            while True:
                item = self._queue.get()
                if item is self._END:
                    return
                if isinstance(item, BaseException):
                    raise ContentUnreadable(str(item) or type(item).__name__) from item
                yield item
        finally:
            self._stop.set()
            self._thread.join()


def scan_content(
    read: Callable[[int], bytes],
    *,
    filename: str = "",
    content_type: str = "application/octet-stream",
    size: int = 0,
    processors: Mapping[str, ProcessorFactory] | None = None,
    on_progress: Callable[[], None] | None = None,
) -> ContentReport:
    """Read a file once through `read(n)` and compute its ContentReport.

    `on_progress` is called after every chunk (it renews the caller's lease, and may raise to
    abandon the pass). Raises ContentUnreadable when `read` fails. A processor that raises is
    reported in `extra` as {"error": ...} and takes no further part.
    """
    scanner = TextScanner()
    lines = 0
    mime, charset = detect_mime(b"")
    active: dict[str, Processor] = {}
    extra: dict[str, Any] = {}
    reader = _ReadAhead(read)
    first = True
    for chunk in reader:
        if first:
            first = False
            mime, charset = detect_mime(chunk)
            facts = FileFacts(filename, content_type, size, mime, chunk)
            for name, factory in (processors or {}).items():
                try:
                    processor = factory(facts)
                except Exception as exc:  # noqa: BLE001 - a plug-in's bug is reported, not fatal
                    extra[name] = _processor_error(name, exc)
                    continue
                if processor is not None:
                    active[name] = processor
        lines += chunk.count(b"\n")
        scanner.feed(chunk)
        for name, processor in list(active.items()):
            try:
                processor.feed(chunk)
            except Exception as exc:  # noqa: BLE001
                extra[name] = _processor_error(name, exc)
                del active[name]
        if on_progress is not None:
            on_progress()
    scanner.finish()
    for name, processor in active.items():
        try:
            result = processor.finish()
        except Exception as exc:  # noqa: BLE001
            extra[name] = _processor_error(name, exc)
            continue
        if result is not None:
            extra[name] = result
    encoding = _encoding(scanner, reader.size, mime, charset)
    if encoding is None and mime.startswith("text/"):
        # libmagic saw only the first chunk; a text type must hold for the whole content.
        mime = "application/octet-stream"
    return ContentReport(
        size=reader.size,
        sha256=reader.sha256.hexdigest(),
        line_count=lines,
        word_count=scanner.words,
        mime_type=mime,
        encoding=encoding,
        extra=dict(sorted(extra.items())),
    )


def _processor_error(name: str, exc: Exception) -> dict[str, str]:
    log.warning("processor %s failed", name, exc_info=exc)
    return {"error": f"{type(exc).__name__}: {exc}"[:500]}


def tune_allocator() -> None:
    """Keep freed memory in the process (glibc) so counting does not map and fault in pages.

    Counting allocates and frees objects of a few hundred KiB per chunk; glibc's defaults give
    them back to the kernel every time, which made a pass 30-50% slower. 64 MiB of slack is kept
    at most. Does nothing where the C library is not glibc.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    mallopt(m_mmap_threshold, 32 * 1024 * 1024)
    mallopt(m_trim_threshold, 64 * 1024 * 1024)
    mallopt(m_top_pad, 16 * 1024 * 1024)
