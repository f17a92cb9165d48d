"""File search over the REST API: names and text content, the owner's only, best match first."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from services.files import processing
from services.files import search as file_search
from services.files.tests.conftest import upload
from shared.pagination import KeysetCursor, RankCursor


@pytest.fixture
def storage_settings(tmp_path) -> dict[str, str]:
    """Local storage only: search reads the database, not the storage backend."""
    directory = tmp_path / "storage"
    directory.mkdir()
    return {"STORAGE_BACKEND": "local", "STORAGE_DIR": str(directory)}


def processed(app, client, user, content: bytes, filename: str, content_type="text/plain"):
    """Upload a file and process it here, as the worker would; its id (not yet indexed)."""
    response = upload(client, user, content, filename=filename, content_type=content_type)
    assert response.status_code == 201, response.json
    file_id = response.json["id"]
    files = app.extensions["files"]
    outcome = processing.process_file(
        files.uow(), storage=files.storage, file_id=uuid.UUID(file_id), policy=files.processing
    )
    assert outcome is processing.ProcessingOutcome.PROCESSED
    return file_id


def index(app, file_id: str) -> file_search.IndexingOutcome:
    """Run the indexing job's work on the file here, as the worker would after processing."""
    files = app.extensions["files"]
    return file_search.index_file_text(
        files.uow(),
        storage=files.storage,
        file_id=uuid.UUID(file_id),
        max_bytes=files.settings.SEARCH_TEXT_MAX_BYTES,
    )


def add(app, client, user, content: bytes, filename: str, content_type: str = "text/plain"):
    """Upload, process and index a file, as the worker would; its id."""
    file_id = processed(app, client, user, content, filename, content_type)
    index(app, file_id)
    return file_id


def documents(app, file_id: str) -> list:
    """The file's search document rows (one at most)."""
    with app.extensions["files"].engine.connect() as conn:
        return conn.execute(
            text("SELECT * FROM file_search_documents WHERE file_id = :id"), {"id": file_id}
        ).all()


def search(client, user, words: str, **params):
    """GET /v1/files?search=…; the JSON page."""
    response = client.get(
        "/v1/files", query_string={"search": words, **params}, headers=user.headers
    )
    assert response.status_code == 200, response.json
    return response.json


def ids(page) -> list[str]:
    """The ids of a page's files, in order."""
    return [edge["node"]["id"] for edge in page["edges"]]


def test_a_user_finds_their_files_by_name_words_and_by_content_words(app, client, make_user):
    alice, bob = make_user(), make_user()
    report = add(app, client, alice, b"nothing to see\n", "Quarterly_report-2026.txt")
    recipe = add(app, client, alice, b"Take three aubergines and some basil.\n", "notes.txt")
    add(app, client, alice, b"unrelated words\n", "other.txt")
    bobs = add(app, client, bob, b"aubergines quarterly\n", "quarterly aubergines.txt")
    assert ids(search(client, alice, "quarterly")) == [report]
    assert ids(search(client, alice, "REPORT 2026")) == [report]
    assert ids(search(client, alice, "aubergines")) == [recipe]
    assert search(client, alice, "aubergines")["total_count"] == 1
    assert ids(search(client, bob, "aubergines")) == [bobs]
    assert ids(search(client, alice, "missing")) == []


def test_the_best_match_comes_first(app, client, user):
    once = add(app, client, user, b"a comet was seen\n" + b"filler words here\n" * 50, "a.txt")
    often = add(app, client, user, b"comet comet comet, the comet\n", "b.txt")
    named = add(app, client, user, b"a comet\n", "comet.txt")
    assert ids(search(client, user, "comet")) == [named, often, once]


def test_paging_through_a_search_is_stable_and_complete(app, client, user):
    expected = {add(app, client, user, b"zebra " * n + b"\n", f"f{n}.txt") for n in range(1, 8)}
    add(app, client, user, b"no stripes\n", "horse.txt")
    whole = ids(search(client, user, "zebra", first=100))
    assert set(whole) == expected
    seen, after = [], None
    while True:
        page = search(client, user, "zebra", first=3, **({"after": after} if after else {}))
        assert page["total_count"] == 7
        seen += ids(page)
        if not page["page_info"]["has_next_page"]:
            break
        after = page["page_info"]["end_cursor"]
    assert seen == whole
    assert isinstance(RankCursor.decode(after), RankCursor)


@pytest.mark.parametrize("blank", ["", "   ", "\t\n"])
def test_a_blank_search_is_the_plain_list(app, client, user, blank):
    for name in ("one.txt", "two.txt"):
        add(app, client, user, b"words\n", name)
    plain = client.get("/v1/files", headers=user.headers).json
    assert search(client, user, blank) == plain


def test_bad_search_input_names_the_field(client, user):
    too_long = client.get("/v1/files", query_string={"search": "x" * 201}, headers=user.headers)
    assert too_long.status_code == 400
    assert too_long.json["code"] == "BAD_USER_INPUT"
    assert "search" in too_long.json["fields"]
    plain_cursor = KeysetCursor(datetime.now(UTC), uuid.uuid4()).encode()
    mixed = client.get(
        "/v1/files", query_string={"search": "x", "after": plain_cursor}, headers=user.headers
    )
    assert mixed.status_code == 400
    assert "after" in mixed.json["fields"]
    rank_cursor = RankCursor(0.5, uuid.uuid4()).encode()
    listing = client.get("/v1/files", query_string={"after": rank_cursor}, headers=user.headers)
    assert listing.status_code == 400
    assert "after" in listing.json["fields"]
    garbage = client.get(
        "/v1/files", query_string={"search": "x", "after": "nope"}, headers=user.headers
    )
    assert garbage.status_code == 400


def test_punctuation_and_operators_in_a_search_are_taken_as_text(app, client, user):
    found = add(app, client, user, b"alpha beta\n", "greek.txt")
    for words in ("alpha & | ! :*", '"alpha beta"', "alpha -gamma", "(((", "'; drop table"):
        response = client.get("/v1/files", query_string={"search": words}, headers=user.headers)
        assert response.status_code == 200, (words, response.json)
    assert ids(search(client, user, '"alpha beta"')) == [found]
    assert ids(search(client, user, "alpha -beta")) == []


def test_only_the_first_bytes_of_a_text_file_are_indexed(make_app, user):
    app = make_app(SEARCH_TEXT_MAX_BYTES=1024)
    client = app.test_client()
    content = b"early " * 10 + b"x" * 2000 + b" late\n"
    file_id = add(app, client, user, content, "long.txt")
    assert ids(search(client, user, "early")) == [file_id]
    assert ids(search(client, user, "late")) == []


def test_binary_content_is_not_indexed_but_its_name_is(app, client, user):
    file_id = add(
        app, client, user, b"\x00\x01secretword\x02" * 10, "image.bin", "application/octet-stream"
    )
    assert ids(search(client, user, "secretword")) == []
    assert ids(search(client, user, "image")) == [file_id]
    assert index(app, file_id) is file_search.IndexingOutcome.NOT_TEXT
    assert documents(app, file_id) == []


def test_the_openapi_document_describes_the_search_parameter(client):
    spec = client.get("/openapi.json").json
    parameters = spec["paths"]["/v1/files"]["get"]["parameters"]
    assert any(p["name"] == "search" and p["in"] == "query" for p in parameters)


def test_text_with_more_words_than_a_tsvector_holds_is_indexed_in_part(app, client, user):
    words = b" ".join(b"w%07dx" % n for n in range(130_000)) + b"\n"
    assert len(words) > 1024 * 1024
    file_id = add(app, client, user, words, "many-words.txt")
    assert ids(search(client, user, "w0000001x")) == [file_id]
    assert ids(search(client, user, "many words")) == [file_id]


def test_processing_leaves_the_content_to_the_indexing_step(app, client, user):
    file_id = processed(app, client, user, b"a walrus on the ice\n", "arctic.txt")
    assert ids(search(client, user, "arctic")) == [file_id]
    assert ids(search(client, user, "walrus")) == []
    assert documents(app, file_id) == []
    assert index(app, file_id) is file_search.IndexingOutcome.INDEXED
    assert ids(search(client, user, "walrus")) == [file_id]


def test_indexing_again_replaces_the_one_document(app, client, user):
    file_id = add(app, client, user, b"pelican\n", "birds.txt")
    (first,) = documents(app, file_id)
    assert index(app, file_id) is file_search.IndexingOutcome.INDEXED
    (again,) = documents(app, file_id)
    assert again.content_vector == first.content_vector
    assert again.indexed_at >= first.indexed_at
    assert search(client, user, "pelican")["total_count"] == 1


def test_a_file_not_yet_processed_or_gone_is_not_indexed(app, client, user):
    response = upload(client, user, b"unprocessed heron\n", filename="waiting.txt")
    waiting = response.json["id"]
    assert index(app, waiting) is file_search.IndexingOutcome.NOT_TEXT
    assert documents(app, waiting) == []
    assert index(app, str(uuid.uuid4())) is file_search.IndexingOutcome.GONE


def test_deleting_a_file_deletes_its_search_document(app, client, user):
    file_id = add(app, client, user, b"flamingo\n", "pink.txt")
    assert len(documents(app, file_id)) == 1
    deleted = client.delete(f"/v1/files/{file_id}", headers=user.headers)
    assert deleted.status_code == 204
    assert documents(app, file_id) == []
    assert index(app, file_id) is file_search.IndexingOutcome.GONE
