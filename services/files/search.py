"""File search: PostgreSQL full text over a file's name and the text of its content.

A file's name is searchable from its upload on (a generated tsvector, weighted A). A text
file's first FILES_SEARCH_TEXT_MAX_BYTES are indexed after processing, off its hot path: the
files consumer answers FileProcessed with the `files.index_file_text` job, which reads those
bytes from storage again and writes the file's search document (`index_file_text`, weighted
B). A search matches either; the best match (ts_rank) comes first, paged over (rank, id) with
shared.pagination's RankCursor.
"""

from __future__ import annotations

import codecs
import enum
import logging
import uuid

from sqlalchemy import (
    ColumnElement,
    Double,
    Select,
    cast,
    func,
    literal_column,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from services.files.models import SEARCH_CONFIG, File, FileSearchDocument, FileStatus
from services.files.repository import FilesUnitOfWork
from services.files.storage import ObjectMissing, Storage
from shared.pagination import RankCursor, best_match_page

log = logging.getLogger(__name__)

#: PostgreSQL's "string is too long for tsvector" (a tsvector holds at most 1 MB).
_PROGRAM_LIMIT_EXCEEDED = "54000"
#: A search document's file was deleted meanwhile.
_FOREIGN_KEY_VIOLATION = "23503"
#: Halvings of the text tried before a file's content is left without words.
_MAX_HALVINGS = 6
#: Bytes asked of storage per read while taking a text file's head.
_READ_SIZE = 256 * 1024


class IndexingUnavailable(Exception):
    """Storage or database cannot be reached now; indexing is worth retrying later."""


class IndexingOutcome(enum.StrEnum):
    """What one call of index_file_text() did."""

    INDEXED = "indexed"
    #: The file is not (or no longer) a PROCESSED text file: nothing to index.
    NOT_TEXT = "not_text"
    #: The file or its stored content was deleted.
    GONE = "gone"


def read_head(storage: Storage, key: str, limit: int) -> bytes:
    """The first `limit` bytes of the stored object (all of it when shorter)."""
    parts: list[bytes] = []
    with storage.open(key, length=limit) as reader:
        while chunk := reader.read(_READ_SIZE):
            parts.append(chunk)
    return b"".join(parts)


def decode_text(head: bytes, encoding: str) -> str:
    """The bytes as text (undecodable bytes replaced, NULs dropped for PostgreSQL)."""
    try:
        codecs.lookup(encoding)
    except LookupError:
        encoding = "utf-8"
    return head.decode(encoding, errors="replace").replace("\x00", " ")


def _vector(text: str) -> ColumnElement:
    return func.setweight(func.to_tsvector(literal_column(f"'{SEARCH_CONFIG}'"), text), "B")


def index_text(session: Session, *, file_id: uuid.UUID, text: str) -> bool:
    """Write the text's words as a PROCESSED file's search document; False if there is no such file.

    Runs in the caller's transaction. Writing again replaces the document: there is one per
    file. Text whose words overflow a tsvector is halved until they fit; the name stays
    searchable whatever happens to the content.
    """
    for halvings in range(_MAX_HALVINGS + 1):
        if halvings == _MAX_HALVINGS:
            log.warning("file %s: its text has too many words to index; only its name is", file_id)
            text = ""
        document = select(File.id, _vector(text)).where(
            File.id == file_id, File.status == FileStatus.PROCESSED.value
        )
        statement = insert(FileSearchDocument).from_select(["file_id", "content_vector"], document)
        statement = statement.on_conflict_do_update(
            index_elements=[FileSearchDocument.file_id],
            set_={"content_vector": statement.excluded.content_vector, "indexed_at": func.now()},
        )
        try:
            with session.begin_nested():
                written = session.execute(statement).rowcount
            return bool(written)
        except IntegrityError as exc:
            if getattr(exc.orig, "pgcode", None) != _FOREIGN_KEY_VIOLATION:
                raise
            # The file was deleted after this transaction's snapshot: nothing to index.
            return False
        except DBAPIError as exc:
            if getattr(exc.orig, "pgcode", None) != _PROGRAM_LIMIT_EXCEEDED:
                raise
            text = text[: len(text) // 2]
    return False


def index_file_text(
    uow: FilesUnitOfWork, *, storage: Storage, file_id: uuid.UUID, max_bytes: int
) -> IndexingOutcome:
    """Build a PROCESSED text file's search document from its first `max_bytes` in storage.

    Idempotent: indexing again writes the same document over the one there (the content is
    immutable). Raises IndexingUnavailable when storage or the database cannot be reached.
    """
    try:
        with uow:
            file = uow.files.get(file_id)
            if file is None:
                return IndexingOutcome.GONE
            if file.status != FileStatus.PROCESSED or file.encoding is None:
                return IndexingOutcome.NOT_TEXT
            key, encoding = file.storage_key, file.encoding
        # Read outside any transaction: storage may be slow, and no row needs to wait for it.
        try:
            head = read_head(storage, key, max_bytes)
        except ObjectMissing:
            return IndexingOutcome.GONE
        except Exception as exc:
            raise IndexingUnavailable(f"storage unreachable: {type(exc).__name__}: {exc}") from exc
        with uow:
            if not index_text(uow.session, file_id=file_id, text=decode_text(head, encoding)):
                return IndexingOutcome.GONE
            uow.commit()
        return IndexingOutcome.INDEXED
    except (OperationalError, InterfaceError) as exc:
        raise IndexingUnavailable(f"database unreachable: {exc.orig or exc}") from exc


def _query(search: str) -> ColumnElement:
    # websearch_to_tsquery takes anything a person types (quotes, OR, -word) and never fails.
    return func.websearch_to_tsquery(literal_column(f"'{SEARCH_CONFIG}'"), search)


def _matching(owner_id: uuid.UUID, search: str) -> tuple[Select, ColumnElement]:
    query = _query(search)
    content = FileSearchDocument.content_vector
    document = File.name_vector.op("||")(func.coalesce(content, literal_column("''::tsvector")))
    # ts_rank is a real, which reaches Python as its shortest decimal, not its exact value:
    # as a double it reads back exact, so a cursor's rank compares equal to the row's own.
    rank = cast(func.ts_rank(document, query), Double).label("rank")
    matches = or_(File.name_vector.bool_op("@@")(query), content.bool_op("@@")(query))
    matching = (
        select(File, rank)
        .outerjoin(FileSearchDocument, FileSearchDocument.file_id == File.id)
        .where(File.owner_id == owner_id, matches)
    )
    return matching, rank


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
