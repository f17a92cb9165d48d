"""file, files and deleteFile over a fake files service: mapping, arguments, errors."""

from __future__ import annotations

import pytest

from services.gateway.errors import GatewayError
from services.gateway.tests.conftest import FILE, FILE_ID, answering, cache_hints, gql

AUTH = {"Authorization": "Bearer t"}
FILE_FIELDS = """
    id filename originalFilename contentType size sha256 status lineCount wordCount mimeType
    encoding error createdAt processedAt
"""


def test_a_file_maps_the_rest_fields_onto_the_contract(client, fake_files):
    processed = {
        **FILE,
        "status": "PROCESSED",
        "line_count": 2**40,
        "word_count": 3,
        "mime_type": "text/plain",
        "encoding": "utf-8",
        "processed_at": "2026-11-22T05:00:01+00:00",
    }
    fake_files.get_file = answering(processed)
    response = gql(client, f'{{ file(id: "{FILE_ID}") {{ {FILE_FIELDS} }} }}', headers=AUTH)
    assert response.json() == {
        "data": {
            "file": {
                "id": FILE_ID,
                "filename": "notes.txt",
                "originalFilename": "notes.txt",
                "contentType": "text/plain",
                "size": 6,
                "sha256": FILE["sha256"],
                "status": "PROCESSED",
                "lineCount": 2**40,
                "wordCount": 3,
                "mimeType": "text/plain",
                "encoding": "utf-8",
                "error": None,
                "createdAt": "2026-11-22T05:00:00.123456+00:00",
                "processedAt": "2026-11-22T05:00:01+00:00",
            }
        },
        "extensions": cache_hints((["file"], 5)),
    }


def test_a_missing_file_is_null(client, fake_files):
    fake_files.get_file = answering(None)
    response = gql(client, '{ file(id: "x") { id } }', headers=AUTH)
    assert response.json() == {"data": {"file": None}, "extensions": cache_hints((["file"], 5))}


def test_files_is_a_connection_over_the_services_page(client, fake_files):
    query = """
        { files(first: 5, after: "abc") {
            edges { cursor node { id filename } } pageInfo { hasNextPage endCursor } totalCount
        } }
    """
    response = gql(client, query, headers=AUTH)
    assert response.json() == {
        "data": {
            "files": {
                "edges": [
                    {"cursor": "file-cursor", "node": {"id": FILE_ID, "filename": "notes.txt"}}
                ],
                "pageInfo": {"hasNextPage": False, "endCursor": "end"},
                "totalCount": 1,
            }
        },
        "extensions": cache_hints((["files"], 5), (["files", "edges", 0, "node"], 5)),
    }
    assert response.headers["Cache-Control"] == "private, max-age=5"
    (_name, _caller, kwargs) = fake_files.calls[0]
    assert kwargs == {"first": 5, "after": "abc", "search": None}


def test_delete_file_answers_true(client, fake_files):
    response = gql(client, f'mutation {{ deleteFile(id: "{FILE_ID}") }}', headers=AUTH)
    assert response.json() == {"data": {"deleteFile": True}}
    assert fake_files.calls[0][0] == "delete_file"
    assert fake_files.calls[0][2] == {"file_id": FILE_ID}


def test_deleting_someone_elses_file_is_not_found(client, fake_files):
    fake_files.error = GatewayError("File not found.", code="NOT_FOUND")
    response = gql(client, f'mutation {{ deleteFile(id: "{FILE_ID}") }}', headers=AUTH)
    assert response.json()["data"] is None
    assert response.json()["errors"][0]["extensions"] == {"code": "NOT_FOUND"}


@pytest.mark.parametrize(
    "query",
    [
        '{ file(id: "x") { id } }',
        "{ files { totalCount } }",
        'mutation { deleteFile(id: "x") }',
    ],
)
def test_file_operations_without_a_token_are_unauthenticated_without_calling_files(
    client, fake_files, query
):
    response = gql(client, query)
    assert [e["extensions"]["code"] for e in response.json()["errors"]] == ["UNAUTHENTICATED"]
    assert fake_files.calls == []
