"""files(search:) through the gateway under uvicorn, against the real files service."""

from __future__ import annotations

import uuid

import pytest

from services.files import processing
from services.files import search as file_search
from tests.gateway_clients import Account, Gateway, codes, upload

SEARCH = """
    query ($search: String, $first: Int, $after: String) {
      files(search: $search, first: $first, after: $after) {
        edges { cursor node { id filename } }
        pageInfo { hasNextPage endCursor }
        totalCount
      }
    }
"""


@pytest.fixture(scope="module")
def gateway(served_gateway) -> Gateway:
    """The session's gateway, served by uvicorn in front of the real services."""
    return Gateway(served_gateway)


@pytest.fixture
def alice(gateway) -> Account:
    """A fresh user."""
    return gateway.sign_up()


@pytest.fixture
def bob(gateway) -> Account:
    """Another fresh user."""
    return gateway.sign_up()


def add(gateway: Gateway, files_app, user: Account, content: bytes, filename: str) -> str:
    """Upload through the gateway, then process and index as the files worker does; its id."""
    file_id = upload(gateway, user, content, filename=filename)["id"]
    files = files_app.extensions["files"]
    outcome = processing.process_file(
        files.uow(), storage=files.storage, file_id=uuid.UUID(file_id), policy=files.processing
    )
    assert outcome is processing.ProcessingOutcome.PROCESSED
    indexed = file_search.index_file_text(
        files.uow(),
        storage=files.storage,
        file_id=uuid.UUID(file_id),
        max_bytes=files.settings.SEARCH_TEXT_MAX_BYTES,
    )
    assert indexed is file_search.IndexingOutcome.INDEXED
    return file_id


def files(gateway: Gateway, user: Account, **variables) -> dict:
    """The files connection for these arguments."""
    body = gateway(SEARCH, variables, token=user.token)
    assert "errors" not in body, body
    return body["data"]["files"]


def ids(connection: dict) -> list[str]:
    """The ids of a connection's files, in order."""
    return [edge["node"]["id"] for edge in connection["edges"]]


def test_search_finds_only_the_callers_files_by_name_and_content(gateway, files_app, alice, bob):
    named = add(gateway, files_app, alice, b"plain words\n", "harbour-map.txt")
    written = add(gateway, files_app, alice, b"the harbour at dawn, the harbour\n", "log.txt")
    add(gateway, files_app, alice, b"nothing\n", "other.txt")
    add(gateway, files_app, bob, b"harbour harbour\n", "harbour.txt")
    found = files(gateway, alice, search="harbour")
    assert ids(found) == [named, written]
    assert found["totalCount"] == 2
    assert ids(files(gateway, alice, search="dawn")) == [written]


def test_search_pages_with_its_cursor_and_a_blank_search_lists_everything(
    gateway, files_app, alice
):
    added = [add(gateway, files_app, alice, b"lantern\n" * n, f"f{n}.txt") for n in (1, 2, 3)]
    whole = ids(files(gateway, alice, search="lantern", first=10))
    assert sorted(whole) == sorted(added)
    first = files(gateway, alice, search="lantern", first=2)
    rest = files(gateway, alice, search="lantern", first=2, after=first["pageInfo"]["endCursor"])
    assert ids(first) + ids(rest) == whole
    assert not rest["pageInfo"]["hasNextPage"]
    assert files(gateway, alice, search="  ") == files(gateway, alice)


def test_bad_search_input_is_bad_user_input(gateway, alice):
    body = gateway(SEARCH, {"search": "x" * 201}, token=alice.token)
    assert codes(body) == ["BAD_USER_INPUT"]
    assert "search" in body["errors"][0]["extensions"]["fields"]
    upload(gateway, alice)
    cursor = files(gateway, alice, first=1)["pageInfo"]["endCursor"]
    body = gateway(SEARCH, {"search": "hello", "after": cursor}, token=alice.token)
    assert codes(body) == ["BAD_USER_INPUT"]
    assert "after" in body["errors"][0]["extensions"]["fields"]
