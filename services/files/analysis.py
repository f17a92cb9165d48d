"""One streaming pass over a file's bytes: size, sha256, wc-compatible counts, MIME type, encoding.

A reading thread reads, hashes and prepares each chunk (its UTF-8 structure) while the caller's
thread counts its words (services/files/counting.py) and feeds the processors: reading, hashing
and numpy release the GIL, so the two halves run on two cores at once.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import logging
import queue
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from services.files.counting import TextScanner

log = logging.getLogger(__name__)

#: Bytes read from storage at a time; a handful of these is all a pass holds in memory.
READ_SIZE = 1024 * 1024
#: Chunks read ahead of the counting (the reading thread blocks when this many wait).
READ_AHEAD = 4
_TEXT_CHARSETS_WITH_NUL = ("utf-16", "utf-32")


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


@dataclass(frozen=True)
class _Failure:
    """An exception of the reading thread, handed to the consuming one."""

    error: BaseException
    #: Raised by `read`: the stored content could not be read (not a bug of ours).
    unreadable: bool


class _ReadAhead:
    """Reads, hashes and prepares chunks in a thread while the caller counts them.

    Reading, hashing and numpy's part of preparing release the GIL, so this thread's work
    overlaps the caller's on a second core.
    """

    _END = object()

    def __init__(self, read: Callable[[int], bytes], prepare: Callable[[bytes], Any]) -> None:
        self._read = read
        self._prepare = prepare
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
                try:
                    chunk = self._read_chunk()
                except BaseException as exc:  # noqa: BLE001 - handed to the consuming thread
                    self._put(_Failure(exc, unreadable=True))
                    return
                if not chunk:
                    break
                self.sha256.update(chunk)
                self.size += len(chunk)
                self._put((chunk, self._prepare(chunk)))
            self._put(self._END)
        except BaseException as exc:  # noqa: BLE001 - handed to the consuming thread
            self._put(_Failure(exc, unreadable=False))

    def _put(self, item: Any) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def __iter__(self) -> Iterator[tuple[bytes, Any]]:
        self._thread.start()
        try:
            while True:
                item = self._queue.get()
                if item is self._END:
                    return
                if isinstance(item, _Failure):
                    if item.unreadable:
                        message = str(item.error) or type(item.error).__name__
                        raise ContentUnreadable(message) from item.error
                    raise item.error
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
    mime, charset = detect_mime(b"")
    active: dict[str, Processor] = {}
    extra: dict[str, Any] = {}
    reader = _ReadAhead(read, scanner.prepare)
    first = True
    for chunk, prepared in reader:
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
        scanner.count(prepared)
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
        line_count=scanner.lines,
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

    Counting allocates and frees objects of about a chunk's size; glibc's defaults give
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
