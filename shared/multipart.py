"""One multipart/form-data pull decoder, sans-IO: feed it the body's bytes, pull parts and data.

Its callers own the I/O: the files service reads a WSGI stream, the gateway awaits an ASGI
body. Both loop the same way:

    event = decoder.next_event()
    while event is NEED_DATA:
        decoder.feed(await read())   # b"" once the body has ended
        event = decoder.next_event()

Events are werkzeug's: Preamble, Field and File (a part's headers), Data (some of its content,
`more_data` false on the last piece) and Epilogue. Every failure is a MultipartError.
"""

from __future__ import annotations

import re

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import (
    NEED_DATA,
    Data,
    Epilogue,
    Event,
    Field,
    File,
    MultipartDecoder,
    Preamble,
)

__all__ = [
    "NEED_DATA",
    "READ_SIZE",
    "Data",
    "Epilogue",
    "Event",
    "Field",
    "File",
    "HeadersTooLong",
    "MultipartError",
    "PullDecoder",
    "Preamble",
    "TooManyParts",
    "boundary_of",
]

#: Bytes a caller should read from the body per `feed`.
READ_SIZE = 64 * 1024
#: Bytes the decoder may buffer while looking for a boundary or the end of a part's headers.
MAX_BUFFERED_BYTES = 4 * READ_SIZE


class MultipartError(ValueError):
    """The body is not well-formed multipart/form-data, or breaks one of the decoder's limits."""


class TooManyParts(MultipartError):
    """The body has more parts than the decoder allows."""


class HeadersTooLong(MultipartError):
    """A part's headers (or the preamble) do not fit in the decoder's buffer."""


def boundary_of(content_type: str | None) -> bytes:
    """The boundary of a `multipart/form-data; boundary=...` media type; MultipartError if none."""
    mimetype, options = parse_options_header(content_type or "")
    boundary = options.get("boundary", "")
    if mimetype != "multipart/form-data" or not boundary:
        raise MultipartError("The body must be multipart/form-data with a boundary.")
    try:
        return boundary.encode("ascii")
    except UnicodeEncodeError:
        raise MultipartError("The multipart boundary is not ASCII.") from None


class PullDecoder:
    """Decodes one multipart body fed in pieces of any size.

    What is fed is handed to the decoder READ_SIZE bytes at a time, as it asks for more, so it
    buffers at most `max_buffered` bytes of the body however large the pieces are.
    """

    def __init__(
        self, boundary: bytes, *, max_parts: int, max_buffered: int = MAX_BUFFERED_BYTES
    ) -> None:
        self.max_parts = max_parts
        self._decoder = MultipartDecoder(
            boundary, max_form_memory_size=max_buffered, max_parts=max_parts
        )
        self._pending = memoryview(b"")
        #: The end of the last piece, kept back because it may begin the closing delimiter.
        self._held = b""
        # A line break (CRLF, or a lone CR or LF) then any beginning of `--boundary--`, at the end.
        nested = b""
        for char in reversed(b"--" + boundary + b"--"):
            nested = re.escape(bytes([char])) + (b"(?:" + nested + b")?" if nested else b"")
        self._delimiter_start_re = re.compile(b"(?:\r\n?|\n)(?:" + nested + b")?\\Z")
        self._delimiter_length = len(boundary) + 6
        self._end_fed = False
        self._end_given = False
        #: Bytes fed so far.
        self.bytes_fed = 0

    def _delimiter_start(self, piece: memoryview) -> int:
        """How many bytes at the end of `piece` could be the start of the closing delimiter."""
        match = self._delimiter_start_re.search(bytes(piece[-self._delimiter_length :]))
        return len(match.group()) if match else 0

    @classmethod
    def for_content_type(cls, content_type: str | None, *, max_parts: int) -> PullDecoder:
        """A decoder for a body of that Content-Type; MultipartError when it is not multipart."""
        return cls(boundary_of(content_type), max_parts=max_parts)

    @property
    def ended(self) -> bool:
        """Whether the end of the body was fed."""
        return self._end_fed

    def feed(self, chunk: bytes) -> None:
        """Hand over the body's next bytes (only once the last ones were pulled); b"": the end."""
        if self._pending:
            raise RuntimeError("feed() before the previous bytes were pulled")
        if not chunk:
            self._end_fed = True
            self._pending = memoryview(self._held)
            self._held = b""
            return
        self.bytes_fed += len(chunk)
        self._pending = memoryview(self._held + chunk if self._held else chunk)
        self._held = b""

    def next_event(self) -> Event:
        """The next event, or NEED_DATA until more is fed; MultipartError on a broken body."""
        while True:
            try:
                event = self._decoder.next_event()
            except RequestEntityTooLarge:
                raise TooManyParts(f"The body has more than {self.max_parts} parts.") from None
            except ValueError:
                raise MultipartError("The multipart body is malformed or truncated.") from None
            if event is not NEED_DATA:
                return event
            if self._pending:
                piece, self._pending = self._pending[:READ_SIZE], self._pending[READ_SIZE:]
                if not self._pending and not self._end_fed:
                    # werkzeug's decoder takes the CR of the closing delimiter for data when a
                    # piece ends inside `--boundary--`: such an end waits for the next piece.
                    held = self._delimiter_start(piece)
                    if held:
                        piece, self._held = piece[:-held], bytes(piece[-held:])
                        if not piece:
                            return NEED_DATA
                try:
                    self._decoder.receive_data(piece)  # type: ignore[arg-type]
                except RequestEntityTooLarge:
                    raise HeadersTooLong("A multipart part's headers are too long.") from None
            elif self._end_fed and not self._end_given:
                self._end_given = True
                self._decoder.receive_data(None)
            else:
                return NEED_DATA
