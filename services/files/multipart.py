"""A pull-based multipart/form-data reader: the file part is read as a stream, never buffered."""

from __future__ import annotations

from services.files.service import IncomingFile
from services.files.storage import Readable
from shared.multipart import (
    NEED_DATA,
    READ_SIZE,
    Data,
    Epilogue,
    Event,
    Field,
    File,
    HeadersTooLong,
    MultipartError,
    PullDecoder,
    TooManyParts,
)

#: Bytes of everything that is not the file's content: boundaries, part headers, other fields.
MAX_OVERHEAD_BYTES = 64 * 1024
MAX_PARTS = 16


class MalformedMultipart(ValueError):
    """The body is not multipart/form-data with exactly one file in the expected field."""


class MultipartUpload:
    """One upload request's body: find the file part, stream it, then check the rest."""

    def __init__(
        self,
        stream: Readable,
        *,
        content_type: str | None,
        content_length: int | None,
        field: str = "file",
    ) -> None:
        try:
            self._decoder = PullDecoder.for_content_type(content_type, max_parts=MAX_PARTS)
        except MultipartError as exc:
            raise MalformedMultipart(str(exc)) from None
        self._source = stream
        self._field = field
        self._file: _FilePart | None = None
        self._skipped_bytes = 0
        self.declared_length = content_length
        self.overhead_allowance = MAX_OVERHEAD_BYTES

    def _next_event(self) -> Event:
        try:
            event = self._decoder.next_event()
            while event is NEED_DATA:
                self._decoder.feed(b"" if self._decoder.ended else self._source.read(READ_SIZE))
                event = self._decoder.next_event()
        except TooManyParts:
            raise MalformedMultipart(f"The upload has more than {MAX_PARTS} parts.") from None
        except HeadersTooLong:
            raise MalformedMultipart("A multipart part's headers are too long.") from None
        except MultipartError:
            raise MalformedMultipart("The multipart body is malformed or truncated.") from None
        return event

    def _skip_part(self) -> None:
        while True:
            event = self._next_event()
            if not isinstance(event, Data):
                raise MalformedMultipart("The multipart body is malformed.")
            self._skipped_bytes += len(event.data)
            if self._skipped_bytes > MAX_OVERHEAD_BYTES:
                raise MalformedMultipart(self._overhead_message())
            if not event.more_data:
                return

    def _overhead_message(self) -> str:
        return (
            f"Everything but the `{self._field}` file's content is limited to "
            f"{MAX_OVERHEAD_BYTES} bytes."
        )

    def open_file(self) -> IncomingFile:
        """Read up to the file part's headers and return its name, type and content stream."""
        while True:
            event = self._next_event()
            if isinstance(event, File) and event.name == self._field:
                self._file = _FilePart(self)
                return IncomingFile(
                    filename=event.filename,
                    content_type=event.headers.get("Content-Type"),
                    stream=self._file,
                )
            if isinstance(event, Field | File):
                self._skip_part()
            elif isinstance(event, Epilogue):
                raise MalformedMultipart(f"The upload has no `{self._field}` file part.")

    def finish(self) -> None:
        """Read the rest of the body; a second file or a truncated body is an error."""
        if self._file is None or not self._file.at_end:
            raise MalformedMultipart("The file part was not read to its end.")
        while True:
            event = self._next_event()
            if isinstance(event, Epilogue):
                if self._decoder.bytes_fed - self._file.size > MAX_OVERHEAD_BYTES:
                    raise MalformedMultipart(self._overhead_message())
                return
            if isinstance(event, File) and event.name == self._field:
                raise MalformedMultipart(f"The upload carries more than one `{self._field}`.")
            if isinstance(event, Field | File):
                self._skip_part()


class _FilePart:
    """The content of the file part, read from the decoder as it arrives."""

    def __init__(self, upload: MultipartUpload) -> None:
        self._upload = upload
        self._pending = b""
        self._last_event_read = False
        self.size = 0

    @property
    def at_end(self) -> bool:
        """Whether every byte of the file has been read."""
        return self._last_event_read and not self._pending

    def read(self, size: int = -1, /) -> bytes:
        """Up to `size` bytes of the file (all that remain when negative); b"" at its end."""
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(READ_SIZE), b""))
        while not self._pending and not self._last_event_read:
            event = self._upload._next_event()
            if not isinstance(event, Data):
                raise MalformedMultipart("The multipart body is malformed.")
            self._pending = event.data
            self._last_event_read = not event.more_data
        data, self._pending = self._pending[:size], self._pending[size:]
        self.size += len(data)
        return data
