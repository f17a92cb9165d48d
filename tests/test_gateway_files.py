"""Files through the gateway under uvicorn, over real HTTP, against the real files service.

The module runs once per storage backend (local directory, then S3 on moto's server); what is
stored is checked in the backend itself, not through the service's storage code.
"""

from __future__ import annotations

import hashlib
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import datetime

import pytest
from sqlalchemy import text

from services.files.app import create_app as create_files_app
from services.files.config import FilesSettings
from services.files.storage import S3_PART_SIZE
from services.gateway.tests.apollo import apollo_upload
from shared.testing import ServerThread
from tests.conftest import (
    FilesBackend,
    fresh_storage,
    gateway_env,
    jwks_url,
    only_data,
    uvicorn_gateway,
)
from tests.gateway_clients import GET_FILE as GET
from tests.gateway_clients import Account, Gateway, codes, upload

DELETE = "mutation ($id: ID!) { deleteFile(id: $id) }"
LIST = """
    query ($first: Int, $after: String) {
      files(first: $first, after: $after) {
        edges { cursor node { id filename } }
        pageInfo { hasNextPage endCursor }
        totalCount
      }
    }
"""


@pytest.fixture(scope="module")
def gateway(files_gateway) -> Gateway:
    """A served gateway in front of the files service on this module run's storage backend."""
    return Gateway(files_gateway)


@pytest.fixture
def alice(gateway) -> Account:
    """A fresh user."""
    return gateway.sign_up()


@pytest.fixture
def bob(gateway) -> Account:
    """Another fresh user."""
    return gateway.sign_up()


def stored_row(backend: FilesBackend, file_id: str):
    """The file's row in the files schema (None once deleted)."""
    with backend.app.extensions["files"].engine.connect() as conn:
        return conn.execute(text("SELECT * FROM files WHERE id = :id"), {"id": file_id}).first()


def test_an_apollo_upload_client_request_is_stored_and_answers_uploaded(
    gateway, alice, files_backend
):
    content = "h\u00e9llo w\u00f6rld\r\nsecond line\n".encode()
    uploaded = upload(gateway, alice, content, filename="r\u00e9sum\u00e9 (1).txt")
    assert uploaded["status"] == "UPLOADED"
    assert uploaded["size"] == len(content)
    assert uploaded["filename"] == "r\u00e9sum\u00e9 (1).txt"
    assert uploaded["contentType"] == "text/plain"
    assert uploaded["__typename"] == "File"
    assert datetime.fromisoformat(uploaded["createdAt"]).tzinfo is not None

    details = gateway(GET, {"id": uploaded["id"]}, token=alice.token)["data"]["file"]
    assert details["sha256"] == hashlib.sha256(content).hexdigest()
    assert details["originalFilename"] == "r\u00e9sum\u00e9 (1).txt"
    assert (details["lineCount"], details["processedAt"]) == (None, None)
    row = stored_row(files_backend, uploaded["id"])
    assert row.owner_id == uuid.UUID(alice.id)
    assert files_backend.content(row.storage_key) == content


def test_a_name_with_a_path_and_control_characters_is_made_safe_and_kept_for_display(
    gateway, alice
):
    # Browsers send a name without escaping backslashes, which werkzeug (like most servers)
    # reads as escapes: a name with backslashes does not survive multipart, with or without us.
    name = "../../evil\u202etxt\x07.exe"
    uploaded = upload(gateway, alice, b"x", filename=name, file_type="")
    details = gateway(GET, {"id": uploaded["id"]}, token=alice.token)["data"]["file"]
    assert details["originalFilename"] == "eviltxt .exe"
    assert details["filename"] == "eviltxt .exe"
    assert details["contentType"] == "application/octet-stream"


def test_a_chunked_upload_without_content_length_streams_through(gateway, alice):
    block = bytes(range(256)) * 256
    uploaded = upload(gateway, alice, iter([block] * 40))
    assert uploaded["size"] == len(block) * 40
    details = gateway(GET, {"id": uploaded["id"]}, token=alice.token)["data"]["file"]
    assert details["sha256"] == hashlib.sha256(block * 40).hexdigest()


def test_an_upload_cut_off_midway_stores_nothing(gateway, alice, files_backend):
    request = apollo_upload("cut.bin")
    # Half of it is more than one S3 part: the s3 backend has a multipart upload to abort.
    content = b"c" * (S3_PART_SIZE * 5 // 2)
    host, port = gateway.url.split("//")[1].split("/")[0].split(":")
    headers = {**request.headers(alice.token), "Content-Length": str(len(request.body(content)))}
    head = "POST /graphql HTTP/1.1\r\nHost: {}\r\n{}\r\n".format(
        host, "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    )
    stored_before = files_backend.stored()
    with socket.create_connection((host, int(port))) as client:
        client.sendall(head.encode() + request.head + content[: len(content) // 2])
        time.sleep(0.5)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        stored = files_backend.stored()
        if stored == stored_before:
            break
        time.sleep(0.1)
    assert stored == stored_before, "a partial upload left content behind"
    assert gateway(LIST, token=alice.token)["data"]["files"]["totalCount"] == 0


def test_uploading_anonymously_is_unauthenticated_and_stores_nothing(gateway, alice):
    before = gateway(LIST, token=alice.token)["data"]["files"]["totalCount"]
    response = gateway.upload(b"secret", token=None)
    assert response.status_code == 200
    assert response.json()["data"] is None
    assert codes(response.json()) == ["UNAUTHENTICATED"]
    assert gateway(LIST, token=alice.token)["data"]["files"]["totalCount"] == before


def test_a_multipart_request_without_the_preflight_header_is_refused(gateway, alice):
    response = gateway.upload(b"csrf", token=alice.token, preflight=False)
    assert response.status_code == 400
    assert codes(response.json()) == ["BAD_USER_INPUT"]
    assert gateway(LIST, token=alice.token)["data"]["files"]["totalCount"] == 0


def test_file_reads_back_and_delete_removes_the_row_and_the_stored_object(
    gateway, alice, files_backend
):
    uploaded = upload(gateway, alice)
    key = stored_row(files_backend, uploaded["id"]).storage_key
    assert files_backend.holds(key)
    read = gateway(GET, {"id": uploaded["id"]}, token=alice.token)["data"]["file"]
    assert (read["id"], read["size"]) == (uploaded["id"], uploaded["size"])

    assert gateway(DELETE, {"id": uploaded["id"]}, token=alice.token) == {
        "data": {"deleteFile": True}
    }
    assert only_data(gateway(GET, {"id": uploaded["id"]}, token=alice.token)) == {"file": None}
    assert stored_row(files_backend, uploaded["id"]) is None
    assert not files_backend.holds(key)
    again = gateway(DELETE, {"id": uploaded["id"]}, token=alice.token)
    assert codes(again) == ["NOT_FOUND"]


def test_another_users_file_is_null_to_read_not_found_to_delete_and_not_listed(gateway, alice, bob):
    uploaded = upload(gateway, alice)
    assert only_data(gateway(GET, {"id": uploaded["id"]}, token=bob.token)) == {"file": None}
    body = gateway(DELETE, {"id": uploaded["id"]}, token=bob.token)
    assert body["data"] is None
    assert codes(body) == ["NOT_FOUND"]
    assert body["errors"][0]["message"] == "File not found."
    assert gateway(LIST, token=bob.token)["data"]["files"]["totalCount"] == 0
    assert gateway(GET, {"id": uploaded["id"]}, token=alice.token)["data"]["file"]["id"]


@pytest.mark.parametrize(
    "file_id",
    [str(uuid.uuid4()), "not-a-file-id", "../../healthz"],
    ids=["unknown", "malformed", "path"],
)
def test_an_unknown_or_malformed_id_is_null_to_read_and_not_found_to_delete(
    gateway, alice, file_id
):
    assert only_data(gateway(GET, {"id": file_id}, token=alice.token)) == {"file": None}
    assert codes(gateway(DELETE, {"id": file_id}, token=alice.token)) == ["NOT_FOUND"]


@pytest.mark.parametrize(
    "query",
    [
        'query { file(id: "00000000-0000-0000-0000-000000000000") { id } }',
        "query { files { totalCount } }",
        'mutation { deleteFile(id: "00000000-0000-0000-0000-000000000000") }',
    ],
)
def test_file_operations_without_a_token_are_unauthenticated(gateway, query):
    body = gateway(query)
    assert codes(body) == ["UNAUTHENTICATED"]


def test_paging_through_files_newest_first_has_no_duplicates_or_gaps(gateway, alice):
    uploaded = [upload(gateway, alice, f"file {i}\n".encode())["id"] for i in range(7)]
    expected = uploaded[::-1]

    seen, after, pages = [], None, 0
    while True:
        page = gateway(LIST, {"first": 3, "after": after}, token=alice.token)["data"]["files"]
        pages += 1
        assert page["totalCount"] == 7
        seen += [edge["node"]["id"] for edge in page["edges"]]
        # An edge's cursor is the files service's own: the last one is the page's end cursor.
        assert page["pageInfo"]["endCursor"] == page["edges"][-1]["cursor"]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == expected
    assert pages == 3

    # Resuming from a cursor in the middle of a page continues right after that file.
    first_page = gateway(LIST, {"first": 3}, token=alice.token)["data"]["files"]
    middle = first_page["edges"][1]["cursor"]
    rest = gateway(LIST, {"first": 10, "after": middle}, token=alice.token)["data"]["files"]
    assert [edge["node"]["id"] for edge in rest["edges"]] == expected[2:]


@pytest.mark.parametrize(
    ("variables", "field"),
    [({"first": 0}, "first"), ({"first": 101}, "first"), ({"after": "garbage"}, "after")],
)
def test_bad_paging_arguments_are_bad_user_input(gateway, alice, variables, field):
    body = gateway(LIST, variables, token=alice.token)
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert set(error["extensions"]["fields"]) == {field}


LIMIT = 1000
QUOTA = 1500


@pytest.fixture(scope="module")
def small_files(request, files_backend, auth_server) -> Iterator[FilesBackend]:
    """A files service with a small upload limit and quota, on an empty store of the backend."""
    settings = FilesSettings(
        JWKS_URL=jwks_url(auth_server.url),
        MAX_UPLOAD_BYTES=LIMIT,
        USER_QUOTA_BYTES=QUOTA,
        **fresh_storage(request, files_backend.name),
    )
    app = create_files_app(settings)
    try:
        with ServerThread(app) as files:
            yield FilesBackend(files_backend.name, app, files.url)
    finally:
        app.extensions["files"].engine.dispose()


@pytest.fixture(scope="module")
def small(small_files, auth_server) -> Iterator[Gateway]:
    """A gateway (uvicorn) sharing FILES_MAX_UPLOAD_BYTES with the small files service."""
    env = gateway_env(auth_server.url, files_url=small_files.url, FILES_MAX_UPLOAD_BYTES=str(LIMIT))
    with uvicorn_gateway(env) as url:
        yield Gateway(url)


def test_a_file_over_the_limit_is_payload_too_large_and_stores_nothing(small, small_files):
    user = small.sign_up()
    stored_before = small_files.stored()
    response = small.upload(b"x" * (LIMIT + 1), token=user.token)
    assert response.status_code == 200
    body = response.json()
    assert body["data"] is None
    (error,) = body["errors"]
    assert error["extensions"] == {"code": "PAYLOAD_TOO_LARGE"}
    assert error["message"] == f"Files are limited to {LIMIT} bytes."
    assert error["path"] == ["uploadFile"]
    assert small(LIST, token=user.token)["data"]["files"]["totalCount"] == 0
    assert small_files.stored() == stored_before
    # Exactly the limit passes.
    assert upload(small, user, b"x" * LIMIT)["size"] == LIMIT


def test_a_chunked_file_over_the_limit_is_payload_too_large(small, small_files):
    user = small.sign_up()
    stored_before = small_files.stored()
    response = small.upload(iter([b"y" * 600, b"y" * 600]), token=user.token)
    assert response.status_code == 200
    assert codes(response.json()) == ["PAYLOAD_TOO_LARGE"]
    assert small(LIST, token=user.token)["data"]["files"]["totalCount"] == 0
    assert small_files.stored() == stored_before


def test_a_declared_length_far_over_the_limit_is_refused_with_413_before_executing(small):
    user = small.sign_up()
    response = small.upload(b"z" * (1024 * 1024), token=user.token)
    assert response.status_code == 413
    body = response.json()
    assert codes(body) == ["PAYLOAD_TOO_LARGE"]
    assert "data" not in body


def test_a_full_quota_is_payload_too_large_with_the_files_services_message(small, small_files):
    user = small.sign_up()
    upload(small, user, b"q" * 900)
    stored_before = small_files.stored()
    response = small.upload(b"q" * 900, token=user.token)
    assert response.status_code == 200
    (error,) = response.json()["errors"]
    assert error["extensions"] == {"code": "PAYLOAD_TOO_LARGE"}
    assert error["message"].startswith("Storage quota exceeded")
    assert small(LIST, token=user.token)["data"]["files"]["totalCount"] == 1
    assert small_files.stored() == stored_before


def test_an_upload_while_processing_is_far_behind_is_refused_with_retry_after(
    gateway, alice, files_backend
):
    upload(gateway, alice)  # nothing processes it here: at least one file waits
    intake = files_backend.app.extensions["files"].intake
    limit = intake.max_backlog
    intake.max_backlog, intake._counted_at = 1, float("-inf")
    try:
        response = gateway.upload(b"one too many\n", token=alice.token)
    finally:
        intake.max_backlog, intake._counted_at = limit, float("-inf")
    # Executed, so 200 by the contract; the pause is in the error and in Retry-After.
    assert response.status_code == 200
    assert response.headers["Retry-After"] == str(intake.retry_after)
    body = response.json()
    assert body["data"] is None
    assert body["errors"][0]["extensions"] == {
        "code": "SERVICE_UNAVAILABLE",
        "retryAfter": intake.retry_after,
    }
    assert upload(gateway, alice)["status"] == "UPLOADED"  # taken again once under the limit
