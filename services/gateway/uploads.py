"""GraphQL multipart requests (the spec apollo-upload-client follows), read as a stream.

    operations   the operation as JSON, each file variable null
    map          JSON: {"1": ["variables.file"]}, which part fills which variable
    1            the file (any part name the map uses), with a filename

`operations` and `map` are read before execution; the file part is left in the request body
and read only while the uploadFile resolver passes it on to the files service, a chunk at a
time. The gateway never holds more than a few chunks of a file, in memory or on disk.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from werkzeug.http import parse_options_header

from services.gateway.errors import BadUserInput, GatewayError
from shared.multipart import (
    NEED_DATA,
    Data,
    Epilogue,
    Event,
    Field,
    File,
    HeadersTooLong,
    MultipartError,
    Preamble,
    PullDecoder,
    TooManyParts,
)

SPEC_URL = "https://github.com/jaydenseric/graphql-multipart-request-spec"
#: Files one request may carry. Each is passed on while it arrives, so a second one would have
#: to be spooled until the first is through; the contract's uploadFile takes one file.
MAX_FILES = 1
#: operations, map and the files.
MAX_PARTS = 2 + MAX_FILES


class MultipartRequestError(ValueError):
    """The body is not a valid GraphQL multipart request; nothing is executed."""


class BodyTooLarge(Exception):
    """The request body grew past the request's limit (raised by the body's reader)."""


class BodyIncomplete(Exception):
    """The client went away before its body ended (raised by the body's reader)."""


class UploadTooLarge(GatewayError):
    """The file is larger than one upload may be."""

    code = "PAYLOAD_TOO_LARGE"

    def __init__(self, limit: int) -> None:
        super().__init__(f"Files are limited to {limit} bytes.")


class UploadIncomplete(BadUserInput):
    """The request body ended, or broke, before the file part did."""

    def __init__(self) -> None:
        super().__init__(
            "The upload ended before its file was complete.",
            fields={"file": "Incomplete multipart body."},
        )


class UploadAlreadyRead(BadUserInput):
    """A file the map put into two variables can only be passed on once."""

    def __init__(self) -> None:
        super().__init__(
            "This file was already used by another field of the operation.",
            fields={"file": "Already used."},
        )


@dataclass(frozen=True)
class MultipartLimits:
    """How large a multipart request's parts may be."""

    #: Largest file part.
    max_file_bytes: int
    #: Largest `operations` and `map` together.
    max_form_bytes: int
    #: Most parts, files included.
    max_parts: int = MAX_PARTS


class FileUpload:
    """One file of a multipart request: its name, declared type and content, readable once.

    What the `Upload` scalar's variables hold. The content is read from the request body while
    it arrives, so it can be consumed once, by one field.
    """

    def __init__(self, reader: MultipartReader, *, filename: str, content_type: str | None):
        self.filename = filename
        self.content_type = content_type
        #: Bytes of content read so far.
        self.size = 0
        self._reader = reader
        self._claimed = False

    async def chunks(self) -> AsyncIterator[bytes]:
        """The content as it arrives; raises UploadTooLarge, UploadIncomplete, UploadAlreadyRead."""
        if self._claimed:
            raise UploadAlreadyRead()
        self._claimed = True
        limit = self._reader.limits.max_file_bytes
        async for chunk in self._reader.file_data():
            self.size += len(chunk)
            if self.size > limit:
                raise UploadTooLarge(limit)
            yield chunk

    def __repr__(self) -> str:
        return f"FileUpload(filename={self.filename!r}, content_type={self.content_type!r})"


class MultipartReader:
    """Reads a GraphQL multipart request from an async body, the file part only on demand.

    `body` yields the request's bytes and raises BodyTooLarge or BodyIncomplete.
    """

    def __init__(
        self, body: AsyncIterator[bytes], *, content_type: str | None, limits: MultipartLimits
    ) -> None:
        self.limits = limits
        self._body = body
        try:
            self._decoder = PullDecoder.for_content_type(content_type, max_parts=limits.max_parts)
        except MultipartError:
            raise MultipartRequestError("A multipart request needs a boundary.") from None
        self._form_bytes = 0

    async def _next_event(self) -> Event:
        """The decoder's next event, reading more of the body as it needs."""
        event = self._decoder.next_event()
        while event is NEED_DATA:
            self._decoder.feed(await anext(self._body, b""))
            event = self._decoder.next_event()
        return event

    async def read_operation(self) -> dict[str, Any]:
        """Read `operations` and `map`, then up to the file's content; return the operation.

        Each variable the map names holds a FileUpload. Raises MultipartRequestError.
        """
        try:
            event = await self._next_event()
            if isinstance(event, Preamble):
                event = await self._next_event()
            operations = await self._json_field(event, "operations")
            files_map = await self._json_field(await self._next_event(), "map")
            if isinstance(operations, list):
                raise MultipartRequestError(
                    "Batched operations are not supported; send one per request."
                )
            if not isinstance(operations, dict):
                raise MultipartRequestError(f"`operations` must be a JSON object ({SPEC_URL}).")
            paths_by_part = _check_map(files_map)
            for part_name, paths in paths_by_part.items():
                upload = await self._open_file(part_name)
                for path in paths:
                    _place(operations, path, upload)
            return operations
        except MultipartRequestError:
            raise
        except (TooManyParts, HeadersTooLong):
            raise MultipartRequestError(
                f"A multipart request has at most {self.limits.max_parts} parts "
                "(operations, map and one file) with headers of reasonable size."
            ) from None
        except (MultipartError, BodyIncomplete):
            raise MultipartRequestError("The multipart body is malformed or truncated.") from None

    async def _json_field(self, event: Event, name: str) -> Any:
        if not isinstance(event, Field) or event.name != name:
            raise MultipartRequestError(
                f"The multipart request must start with the `operations` and `map` fields, "
                f"in that order ({SPEC_URL})."
            )
        chunks = []
        while True:
            data = await self._next_event()
            if not isinstance(data, Data):
                raise MultipartRequestError("The multipart body is malformed.")
            self._form_bytes += len(data.data)
            if self._form_bytes > self.limits.max_form_bytes:
                raise MultipartRequestError(
                    f"`operations` and `map` are limited to {self.limits.max_form_bytes} bytes."
                )
            chunks.append(data.data)
            if not data.more_data:
                break
        try:
            return json.loads(b"".join(chunks))
        except (UnicodeDecodeError, ValueError):
            raise MultipartRequestError(f"`{name}` must be JSON.") from None

    async def _open_file(self, part_name: str) -> FileUpload:
        event = await self._next_event()
        if isinstance(event, Epilogue):
            raise MultipartRequestError(f"The file part `{part_name}` named in `map` is missing.")
        if not isinstance(event, File) or event.name != part_name:
            name = getattr(event, "name", None)
            raise MultipartRequestError(
                f"Expected the file part `{part_name}` after `map`, found `{name}` "
                "(a file part needs a filename)."
            )
        return FileUpload(self, filename=event.filename, content_type=_media_type(event.headers))

    async def file_data(self) -> AsyncIterator[bytes]:
        """The content of the file part the body is positioned at, up to its boundary."""
        while True:
            try:
                event = await self._next_event()
            except BodyTooLarge:
                # A body without Content-Length grew past the request limit.
                raise UploadTooLarge(self.limits.max_file_bytes) from None
            except (MultipartError, BodyIncomplete):
                # The decoder found the body truncated or malformed; or the client went away
                # before sending all it announced.
                raise UploadIncomplete() from None
            if not isinstance(event, Data):
                raise UploadIncomplete()
            if event.data:
                yield event.data
            if not event.more_data:
                return


def _media_type(headers: Any) -> str | None:
    # Only a plain `type/subtype` is passed on into the files service's request headers.
    value = headers.get("Content-Type")
    if not value:
        return None
    mimetype, _options = parse_options_header(value)
    return mimetype if mimetype.isascii() and mimetype.isprintable() else None


def _check_map(files_map: Any) -> dict[str, list[str]]:
    if not isinstance(files_map, dict):
        raise MultipartRequestError(f"`map` must be a JSON object ({SPEC_URL}).")
    if len(files_map) > MAX_FILES:
        raise MultipartRequestError(f"A request may carry at most {MAX_FILES} file.")
    for part_name, paths in files_map.items():
        if (
            not isinstance(paths, list)
            or not paths
            or not all(isinstance(path, str) for path in paths)
        ):
            raise MultipartRequestError(
                f"`map` entry `{part_name}` must be a list of object paths ({SPEC_URL})."
            )
    return files_map


def _place(operations: dict[str, Any], path: str, upload: FileUpload) -> None:
    """Put `upload` where `path` (e.g. `variables.file` or `variables.files.0`) points."""
    head, *keys = path.split(".")
    if head != "variables" or not keys:
        raise MultipartRequestError(f"`map` path `{path}` must point into `variables`.")
    container: Any = operations
    key: str | int = head
    for next_key in keys:
        container = _child(container, key, path)
        key = next_key
        if isinstance(container, list):
            if not next_key.isdigit() or int(next_key) >= len(container):
                raise MultipartRequestError(f"`map` path `{path}` is not in `operations`.")
            key = int(next_key)
    if isinstance(container, dict) and key not in container:
        raise MultipartRequestError(f"`map` path `{path}` is not in `operations`.")
    if container[key] is not None:
        raise MultipartRequestError(f"`map` path `{path}` must be null in `operations`.")
    container[key] = upload


def _child(container: Any, key: str | int, path: str) -> Any:
    if isinstance(container, dict) and isinstance(key, str) and key in container:
        child = container[key]
    elif isinstance(container, list) and isinstance(key, int):
        child = container[key]
    else:
        raise MultipartRequestError(f"`map` path `{path}` is not in `operations`.")
    if not isinstance(child, dict | list):
        raise MultipartRequestError(f"`map` path `{path}` is not in `operations`.")
    return child
