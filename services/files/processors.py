"""Pluggable processors: a registry extra processors join, and the built-in image dimensions one.

A processor factory takes the FileFacts of one file and returns a streaming Processor (`feed`,
`finish`) or None when the file is not its kind; its result lands in the file's `extra` under
the name it was registered with. Processors come from, in this order:

* the entry-point group `dockyard.files.processors` of installed packages (name = factory),
  loaded by shared.plugins; the built-in `image` below is declared there too, in Dockyard's
  pyproject.toml;
* `register_processor(name, factory)` calls made before the service starts;
* FILES_PROCESSORS: `name=module:attribute` pairs, comma-separated.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable
from typing import Any

from services.files.analysis import FileFacts, Processor, ProcessorFactory
from shared import plugins

ENTRY_POINT_GROUP = plugins.GROUPS["processor"]
_NAME = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
_registered: dict[str, ProcessorFactory] = {}

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
GIF_SIGNATURES = (b"GIF87a", b"GIF89a")
JPEG_SIGNATURE = b"\xff\xd8"
#: JPEG start-of-frame markers (SOF0-SOF15 less DHT, JPG and DAC), which carry the dimensions.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
#: Markers that stand alone, without a length: TEM and the restart markers.
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})


class InvalidProcessor(ValueError):
    """A processor name or FILES_PROCESSORS entry that cannot be used (raised at start-up)."""


def register_processor(name: str, factory: ProcessorFactory) -> None:
    """Add a processor for every file processed from now on (a later name wins)."""
    if not _NAME.match(name):
        raise InvalidProcessor(f"processor name {name!r}: use [a-z0-9_.-], start with a letter")
    _registered[name] = factory


def _import(path: str) -> ProcessorFactory:
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise InvalidProcessor(f"{path!r} is not module:attribute")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise InvalidProcessor(f"cannot load processor {path!r}: {exc}") from exc


def available_processors(configured: Iterable[tuple[str, str]] = ()) -> dict[str, ProcessorFactory]:
    """Every processor by name: entry points that loaded, registered ones, then `configured`."""
    # A processor plugin that failed to load is listed (GET /v1/plugins), not fatal: no
    # operator setting asked for it.
    found: dict[str, ProcessorFactory] = dict(plugins.loaded("processor"))
    found.update(_registered)
    for name, path in configured:
        found[name] = _import(path)
    return found


def image_dimensions(facts: FileFacts) -> Processor | None:
    """Width and height of PNG, GIF and JPEG images, read from their headers."""
    head = facts.head
    if head.startswith(PNG_SIGNATURE):
        return _HeadDimensions(_png_size(head), "png")
    if head.startswith(GIF_SIGNATURES):
        return _HeadDimensions(_gif_size(head), "gif")
    if head.startswith(JPEG_SIGNATURE):
        return _JpegDimensions()
    return None


def _png_size(head: bytes) -> tuple[int, int] | None:
    # The IHDR chunk comes first: length, b"IHDR", width, height (big-endian).
    if len(head) < 24 or head[12:16] != b"IHDR":
        return None
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def _gif_size(head: bytes) -> tuple[int, int] | None:
    # The logical screen descriptor follows the signature: width, height (little-endian).
    if len(head) < 10:
        return None
    return int.from_bytes(head[6:8], "little"), int.from_bytes(head[8:10], "little")


class _HeadDimensions:
    """A result known from the first chunk alone."""

    def __init__(self, size: tuple[int, int] | None, image_format: str) -> None:
        self._size = size
        self._format = image_format

    def feed(self, chunk: bytes) -> None:
        """Nothing to do: the header was in the first chunk."""

    def finish(self) -> dict[str, Any] | None:
        """The format and dimensions, if the header was valid."""
        if self._size is None:
            return None
        return {"format": self._format, "width": self._size[0], "height": self._size[1]}


class _JpegDimensions:
    """Walks JPEG marker segments across chunks until a start-of-frame gives the dimensions.

    Memory stays bounded: a segment's body is skipped by counting, never buffered.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._skip = 2  # the SOI marker
        self._done = False
        self._size: tuple[int, int] | None = None

    def feed(self, chunk: bytes) -> None:
        """Scan the next bytes."""
        if self._done:
            return
        if self._skip >= len(chunk):
            self._skip -= len(chunk)
            return
        self._buffer += chunk[self._skip :]
        self._skip = 0
        self._parse()

    def _parse(self) -> None:
        buffer = self._buffer
        pos = 0
        while not self._done:
            if pos + 2 > len(buffer):
                break
            if buffer[pos] != 0xFF:
                self._done = True  # not a marker where one must be: not a JPEG we understand
                break
            code = buffer[pos + 1]
            if code == 0xFF:
                pos += 1  # fill byte
                continue
            if code in _JPEG_STANDALONE:
                pos += 2
                continue
            if code in (0xD9, 0xDA):
                self._done = True  # end of image or start of scan, and no frame header before
                break
            if pos + 4 > len(buffer):
                break
            length = int.from_bytes(buffer[pos + 2 : pos + 4], "big")
            if code in _JPEG_SOF:
                if pos + 9 > len(buffer):
                    break
                height = int.from_bytes(buffer[pos + 5 : pos + 7], "big")
                width = int.from_bytes(buffer[pos + 7 : pos + 9], "big")
                self._size = (width, height)
                self._done = True
                break
            end = pos + 2 + length
            if end > len(buffer):
                self._skip = end - len(buffer)
                pos = len(buffer)
                break
            pos = end
        del buffer[:pos]
        if self._done:
            buffer.clear()

    def finish(self) -> dict[str, Any] | None:
        """The dimensions from the frame header, if one was found."""
        if self._size is None:
            return None
        return {"format": "jpeg", "width": self._size[0], "height": self._size[1]}
