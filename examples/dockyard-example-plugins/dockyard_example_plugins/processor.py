"""The `tsv` file processor: rows and columns of tab-separated files (named *.tsv)."""

from __future__ import annotations

from typing import Any


class _TsvCounter:
    """Counts newlines and, on the first line, tabs; never holds more than one chunk."""

    def __init__(self) -> None:
        self.rows = 0
        self.columns = 1
        self.first_line_done = False
        self.last_byte = b""

    def feed(self, chunk: bytes) -> None:
        """Count the chunk's rows (and the first row's columns)."""
        if not chunk:
            return
        if not self.first_line_done:
            first, newline, _ = chunk.partition(b"\n")
            self.columns += first.count(b"\t")
            self.first_line_done = bool(newline)
        self.rows += chunk.count(b"\n")
        self.last_byte = chunk[-1:]

    def finish(self) -> dict[str, Any]:
        """Rows (a last line without a newline counts) and columns of the first row."""
        rows = self.rows + (1 if self.last_byte not in (b"", b"\n") else 0)
        return {"rows": rows, "columns": self.columns if rows else 0}


def tsv_columns(facts: Any) -> _TsvCounter | None:
    """A processor for files whose name ends in .tsv; None for every other file."""
    if not facts.filename.lower().endswith(".tsv"):
        return None
    return _TsvCounter()
