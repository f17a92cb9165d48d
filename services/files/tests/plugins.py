"""Processors the tests plug in through FILES_PROCESSORS (name=module:attribute)."""

from __future__ import annotations

import os
import time
from typing import Any

from services.files.analysis import FileFacts, Processor

#: Seconds the `slow` processor sleeps per chunk (set in the worker's environment).
SLOW_DELAY_VAR = "FILES_TEST_SLOW_DELAY"


class _Tally:
    """Counts chunks and bytes, and keeps the first bytes it saw."""

    def __init__(self, facts: FileFacts) -> None:
        self.facts = facts
        self.chunks = 0
        self.bytes = 0

    def feed(self, chunk: bytes) -> None:
        """Count the chunk."""
        self.chunks += 1
        self.bytes += len(chunk)

    def finish(self) -> dict[str, Any]:
        """What was seen."""
        return {
            "bytes": self.bytes,
            "starts_with": self.facts.head[:4].hex(),
            "declared": self.facts.content_type,
        }


def tally(facts: FileFacts) -> Processor:
    """A processor for every file: bytes seen and the first four, as hex."""
    return _Tally(facts)


class _Slow:
    def __init__(self, delay: float) -> None:
        self.delay = delay

    def feed(self, chunk: bytes) -> None:
        time.sleep(self.delay)

    def finish(self) -> None:
        return None


def slow(facts: FileFacts) -> Processor | None:
    """Slows processing of files named `slow-*` down, so a test can kill a worker mid-file."""
    if not facts.filename.startswith("slow-"):
        return None
    return _Slow(float(os.environ.get(SLOW_DELAY_VAR, "0.05")))


def broken(facts: FileFacts) -> Processor | None:
    """Fails on files named `broken-*`: its error is reported, the file still processed."""
    if not facts.filename.startswith("broken-"):
        return None
    raise RuntimeError("this processor is broken on purpose")
