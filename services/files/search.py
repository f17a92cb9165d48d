"""File search: PostgreSQL full text over a file's name and the text of its content.

A file's name is searchable from its upload on (a generated tsvector, weighted A); a text
file's first FILES_SEARCH_TEXT_MAX_BYTES are indexed when processing finds it is text
(`index_text`, weighted B). A search matches either; the best match (ts_rank) comes first,
paged over (rank, id) with shared.pagination's RankCursor.
"""

from __future__ import annotations

import codecs
import logging
import uuid
from collections.abc import Callable

from sqlalchemy import (
    ColumnElement,
    Double,
    Select,
    cast,
    func,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from services.files.models import SEARCH_CONFIG, File
from shared.pagination import RankCursor, best_match_page

log = logging.getLogger(__name__)

#: PostgreSQL's "string is too long for tsvector" (a tsvector holds at most 1 MB).
_PROGRAM_LIMIT_EXCEEDED = "54000"
#: Halvings of the text tried before a file's content is left unindexed.
_MAX_HALVINGS = 6


class TextCapture:
    """Keeps the first `limit` bytes a reader returns, as processing streams a file through."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._parts: list[bytes] = []
        self._kept = 0

    def wrap(self, read: Callable[[int], bytes]) -> Callable[[int], bytes]:
        """`read`, keeping a copy of what it returns until `limit` bytes are kept."""

        def reading(size: int) -> bytes:
            data = read(size)
            if self._kept < self.limit and data:
                part = data[: self.limit - self._kept]
                self._parts.append(part)
                self._kept += len(part)
            return data

        return reading

    def text(self, encoding: str) -> str:
        """The kept bytes decoded (undecodable bytes replaced, NULs dropped for PostgreSQL)."""
        try:
            codecs.lookup(encoding)
        except LookupError:
            encoding = "utf-8"
        return b"".join(self._parts).decode(encoding, errors="replace").replace("\x00", " ")


def index_text(session: Session, *, file_id: uuid.UUID, text: str) -> None:
    """Store the text's words as the file's content vector (in the caller's transaction).

    Text whose words overflow a tsvector is halved until they fit; the name stays searchable
    whatever happens to the content.
    """
    for _ in range(_MAX_HALVINGS):
        vector = func.setweight(func.to_tsvector(literal_column(f"'{SEARCH_CONFIG}'"), text), "B")
        try:
            with session.begin_nested():
                session.execute(
                    update(File).where(File.id == file_id).values(content_vector=vector)
                )
            return
        except DBAPIError as exc:
            if getattr(exc.orig, "pgcode", None) != _PROGRAM_LIMIT_EXCEEDED:
                raise
            text = text[: len(text) // 2]
    log.warning("file %s: its text has too many words to index; only its name is", file_id)


def _query(search: str) -> ColumnElement:
    # websearch_to_tsquery takes anything a person types (quotes, OR, -word) and never fails.
    return func.websearch_to_tsquery(literal_column(f"'{SEARCH_CONFIG}'"), search)


def _matching(owner_id: uuid.UUID, search: str) -> tuple[Select, ColumnElement]:
    query = _query(search)
    document = File.name_vector.op("||")(
        func.coalesce(File.content_vector, literal_column("''::tsvector"))
    )
    # ts_rank is a real, which reaches Python as its shortest decimal, not its exact value:
    # as a double it reads back exact, so a cursor's rank compares equal to the row's own.
    rank = cast(func.ts_rank(document, query), Double).label("rank")
    matches = or_(File.name_vector.bool_op("@@")(query), File.content_vector.bool_op("@@")(query))
    return select(File, rank).where(File.owner_id == owner_id, matches), rank


def best_matches(
    session: Session, *, owner_id: uuid.UUID, search: str, first: int, after: RankCursor | None
) -> list[tuple[File, float]]:
    """Up to `first` + 1 of the owner's files matching `search`, best first, after the cursor."""
    matching, rank = _matching(owner_id, search)
    # The rank is recomputed in the cursor's comparison: an alias cannot appear in WHERE.
    rank_expression = rank.element
    query = best_match_page(matching, rank_expression, File.id, first=first, after=after)
    return [(file, float(score)) for file, score in session.execute(query)]


def count_matches(session: Session, *, owner_id: uuid.UUID, search: str) -> int:
    """How many of the owner's files match `search`."""
    matching, _rank = _matching(owner_id, search)
    count = session.scalar(select(func.count()).select_from(matching.subquery()))
    return count or 0
