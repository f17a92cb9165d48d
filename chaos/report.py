"""What one chaos row measured, its verdict, and the table and JSON a run prints and writes."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

COLUMNS = (
    ("row", "row"),
    ("fault", "fault"),
    ("submitted", "submitted"),
    ("completed", "completed"),
    ("lost", "lost"),
    ("dups", "duplicates"),
    ("converge s", "converge_seconds"),
    ("5xx", "client_5xx"),
    ("503", "client_503"),
    ("verdict", "verdict"),
)


@dataclass
class RowResult:
    """One row: the work accepted during its fault, what became of it, and what clients saw.

    `lost` is work the gateway accepted that did not reach its final state within the deadline
    (or reached a failed one); `problems` lists every other broken promise of the row (a 500,
    a leaked container, a process that died by itself, a token that failed open).
    """

    row: str
    fault: str
    submitted: int = 0
    completed: int = 0
    lost: int = 0
    duplicates: int = 0
    converge_seconds: float | None = None
    #: Answers that were the server's fault other than an explicit 503 (HTTP 500s,
    #: INTERNAL_SERVER_ERROR in GraphQL errors).
    client_5xx: int = 0
    #: SERVICE_UNAVAILABLE answers: expected while a dependency is down.
    client_503: int = 0
    problems: list[str] = field(default_factory=list)
    #: Why the row was not run (not implemented yet, say); it then has no verdict.
    skipped: str | None = None

    @property
    def verdict(self) -> str:
        """PASS, FAIL or SKIP."""
        if self.skipped is not None:
            return "SKIP"
        return "FAIL" if self.lost or self.problems or self.converge_seconds is None else "PASS"


def failed(rows: list[RowResult]) -> bool:
    """Whether the run fails: any row lost work, broke a promise or never converged."""
    return any(row.verdict == "FAIL" for row in rows)


def _cell(row: RowResult, attr: str) -> str:
    value = getattr(row, attr)
    if attr == "converge_seconds":
        return "-" if value is None else f"{value:.1f}"
    return str(value)


def table(rows: list[RowResult]) -> str:
    """The rows as one plain-text table, then each row's problems and skip reasons below it."""
    cells = [[_cell(row, attr) for _, attr in COLUMNS] for row in rows]
    headers = [title for title, _ in COLUMNS]
    widths = [max(len(line[i]) for line in [headers, *cells]) for i in range(len(headers))]
    lines = ["  ".join(text.ljust(width) for text, width in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * width for width in widths))
    lines += [
        "  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True))
        for line in cells
    ]
    for row in rows:
        lines += [f"{row.row}: {problem}" for problem in row.problems]
        if row.skipped is not None:
            lines.append(f"{row.row}: not run: {row.skipped}")
    lines.append("RESULT: " + ("FAIL" if failed(rows) else "PASS"))
    return "\n".join(lines)


def to_json(rows: list[RowResult], **context: object) -> str:
    """The rows (with their verdicts) and the run's context as JSON."""
    return json.dumps(
        {
            **context,
            "result": "FAIL" if failed(rows) else "PASS",
            "rows": [{**asdict(row), "verdict": row.verdict} for row in rows],
        },
        indent=2,
    )


def write_json(directory: Path, name: str, rows: list[RowResult], **context: object) -> Path:
    """Write the run's JSON as `directory/name`; returns the path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(to_json(rows, **context) + "\n")
    return path
