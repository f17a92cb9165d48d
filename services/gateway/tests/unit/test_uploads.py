"""uploadFile over HTTP: the multipart request spec, CSRF headers, limits, streaming errors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from services.gateway.tests.apollo import UPLOAD_MUTATION, apollo_upload
from services.gateway.tests.conftest import GOOD_TOKEN, client_of, gql
from services.gateway.uploads import FileUpload, MultipartLimits, MultipartReader

CONTENT = b"hello\nworld\n"


def post(client, upload, body: bytes, **header_options):
    """POST a prepared multipart body."""
    return client.post("/graphql", content=body, headers=upload.headers(**header_options))


def codes(response) -> list[str]:
    """The extensions.code of every error."""
    return [error["extensions"]["code"] for error in response.json().get("errors", [])]


def test_an_upload_built_like_apollo_upload_client_is_passed_on_whole(client, fake_files):
    upload = apollo_upload("notes.txt", file_type="text/plain")
    response = post(client, upload, upload.body(CONTENT), token=GOOD_TOKEN)
    assert response.status_code == 200, response.json()
    assert "errors" not in response.json()
    uploaded = response.json()["data"]["uploadFile"]
    assert (uploaded["filename"], uploaded["contentType"], uploaded["size"]) == (
        "notes.txt",
        "text/plain",
        len(CONTENT),
    )
    assert uploaded["__typename"] == "File"
    assert fake_files.uploaded == [CONTENT]
    (_name, caller, _kwargs) = fake_files.calls[0]
    assert caller.token == GOOD_TOKEN


def test_a_file_without_a_type_and_with_an_odd_name_keeps_its_name(client, fake_files):
    upload = apollo_upload('r\u00e9sum\u00e9 "final".bin')
    response = post(client, upload, upload.body(b"\x00\x01"), token=GOOD_TOKEN)
    uploaded = response.json()["data"]["uploadFile"]
    # The browser sends the quotes as %22; werkzeug decodes them back, as browsers intend.
    assert uploaded["filename"] == 'r\u00e9sum\u00e9 "final".bin'
    assert uploaded["contentType"] == "application/octet-stream"


def test_an_empty_file_is_passed_on(client, fake_files):
    upload = apollo_upload("empty.txt", file_type="text/plain")
    response = post(client, upload, upload.body(b""), token=GOOD_TOKEN)
    assert response.json()["data"]["uploadFile"]["size"] == 0
    assert fake_files.uploaded == [b""]


def test_a_file_with_boundary_like_lines_arrives_byte_for_byte(client, fake_files):
    upload = apollo_upload("tricky.txt")
    boundary = upload.content_type.split("boundary=")[1]
    content = f"--{boundary[:-1]}\r\n--\r\n\r\n{boundary}".encode() * 5000
    response = post(client, upload, upload.body(content), token=GOOD_TOKEN)
    assert "errors" not in response.json()
    assert fake_files.uploaded == [content]


def test_a_multipart_request_without_a_preflight_header_is_refused(client, fake_files):
    upload = apollo_upload("notes.txt")
    response = post(client, upload, upload.body(CONTENT), token=GOOD_TOKEN, preflight=False)
    assert response.status_code == 400
    assert codes(response) == ["BAD_USER_INPUT"]
    assert "apollo-require-preflight" in response.json()["errors"][0]["message"]
    assert fake_files.calls == []


def test_x_apollo_operation_name_also_passes_the_csrf_check(client, fake_files):
    upload = apollo_upload("notes.txt")
    headers = upload.headers(token=GOOD_TOKEN, preflight=False)
    headers["X-Apollo-Operation-Name"] = "UploadFile"
    response = client.post("/graphql", content=upload.body(CONTENT), headers=headers)
    assert response.status_code == 200
    assert fake_files.uploaded == [CONTENT]


@pytest.mark.parametrize("token", [None, "expired-or-forged"])
def test_an_upload_without_a_valid_token_is_unauthenticated_and_not_passed_on(
    client, fake_files, token
):
    upload = apollo_upload("notes.txt")
    response = post(client, upload, upload.body(CONTENT), token=token)
    assert response.status_code == 200
    assert response.json()["data"] is None
    assert codes(response) == ["UNAUTHENTICATED"]
    assert fake_files.calls == []


def test_a_file_over_the_limit_is_payload_too_large_once_executed(make_app, fake_files):
    client = client_of(make_app(MAX_UPLOAD_BYTES=10))
    upload = apollo_upload("big.txt")
    response = post(client, upload, upload.body(b"x" * 11), token=GOOD_TOKEN)
    assert response.status_code == 200
    (error,) = response.json()["errors"]
    assert error["extensions"] == {"code": "PAYLOAD_TOO_LARGE"}
    assert error["message"] == "Files are limited to 10 bytes."
    assert error["path"] == ["uploadFile"]
    assert fake_files.uploaded == []


def test_a_file_of_exactly_the_limit_is_accepted(make_app, fake_files):
    client = client_of(make_app(MAX_UPLOAD_BYTES=10))
    upload = apollo_upload("fits.txt")
    response = post(client, upload, upload.body(b"x" * 10), token=GOOD_TOKEN)
    assert response.json()["data"]["uploadFile"]["size"] == 10


def test_a_declared_length_over_the_limit_is_refused_with_413_before_executing(
    make_app, fake_files
):
    client = client_of(make_app(MAX_UPLOAD_BYTES=10, MAX_REQUEST_BYTES=4096))
    upload = apollo_upload("big.txt")
    response = post(client, upload, upload.body(b"x" * 5000), token=GOOD_TOKEN)
    assert response.status_code == 413
    assert codes(response) == ["PAYLOAD_TOO_LARGE"]
    assert "data" not in response.json()
    assert fake_files.calls == []


def test_a_body_that_ends_inside_the_file_is_bad_user_input(client, fake_files):
    upload = apollo_upload("cut.txt")
    response = post(client, upload, upload.head + b"only part of it", token=GOOD_TOKEN)
    assert response.status_code == 200
    assert codes(response) == ["BAD_USER_INPUT"]
    assert (
        response.json()["errors"][0]["message"] == "The upload ended before its file was complete."
    )
    assert fake_files.uploaded == []


def test_a_file_mapped_into_two_variables_is_passed_on_once(client, fake_files):
    query = (
        "mutation ($file: Upload!, $again: Upload!) "
        "{ a: uploadFile(file: $file) { id } b: uploadFile(file: $again) { id } }"
    )
    upload = apollo_upload(
        "twice.txt",
        query=query,
        operation_name=None,
        variables={"file": None, "again": None},
        files_map={"1": ["variables.file", "variables.again"]},
    )
    response = post(client, upload, upload.body(CONTENT), token=GOOD_TOKEN)
    assert codes(response) == ["BAD_USER_INPUT"]
    assert response.json()["errors"][0]["path"] == ["b"]
    assert fake_files.uploaded == [CONTENT]


def test_a_file_in_a_list_variable_is_placed_by_its_index():
    upload = apollo_upload(
        "listed.txt",
        variables={"files": [None]},
        files_map={"1": ["variables.files.0"]},
    )
    reader = MultipartReader(
        _pieces(upload.body(CONTENT)),
        content_type=upload.content_type,
        limits=MultipartLimits(max_file_bytes=100, max_form_bytes=10_000),
    )
    operation, content = asyncio.run(_operation_and_file(reader, "files", 0))
    assert operation["variables"]["files"][0].filename == "listed.txt"
    assert content == CONTENT


async def _pieces(data: bytes, piece: int = 7) -> AsyncIterator[bytes]:
    """A request body in small pieces, as a network delivers it."""
    for start in range(0, len(data), piece):
        yield data[start : start + piece]


async def _operation_and_file(
    reader: MultipartReader, variable: str, index: int | None = None
) -> tuple[dict, bytes]:
    """Read the operation, then the content of the file the variable holds."""
    operation = await reader.read_operation()
    upload: FileUpload = operation["variables"][variable]
    if index is not None:
        upload = upload[index]
    return operation, b"".join([chunk async for chunk in upload.chunks()])


def test_a_body_read_in_tiny_pieces_parses_the_same():
    upload = apollo_upload("pieces.txt", file_type="text/plain")
    reader = MultipartReader(
        _pieces(upload.body(CONTENT * 100)),
        content_type=upload.content_type,
        limits=MultipartLimits(max_file_bytes=10_000, max_form_bytes=10_000),
    )
    operation, content = asyncio.run(_operation_and_file(reader, "file"))
    file = operation["variables"]["file"]
    assert (file.filename, file.content_type) == ("pieces.txt", "text/plain")
    assert content == CONTENT * 100


def _operations(query: str = UPLOAD_MUTATION, variables: dict | None = None) -> str:
    return json.dumps(
        {"query": query, "variables": {"file": None} if variables is None else variables}
    )


def _raw(parts: list[tuple[str, bytes, str | None]]) -> tuple[bytes, str]:
    """A multipart body of (name, content, filename) parts, in order."""
    boundary = "----WebKitFormBoundaryAAAAAAAAAAAAAAAA"
    body = b""
    for name, content, filename in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
        body += content + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


MAP = b'{"1": ["variables.file"]}'


@pytest.mark.parametrize(
    ("parts", "message"),
    [
        ([("map", MAP, None), ("operations", _operations().encode(), None)], "start with"),
        ([("operations", _operations().encode(), None), ("1", CONTENT, "a.txt")], "start with"),
        ([("operations", b"{not json", None), ("map", MAP, None)], "`operations` must be JSON"),
        ([("operations", _operations().encode(), None), ("map", b"[", None)], "`map` must be"),
        (
            [("operations", b"[" + _operations().encode() + b"]", None), ("map", MAP, None)],
            "Batched",
        ),
        ([("operations", _operations().encode(), None), ("map", MAP, None)], "is missing"),
        (
            [
                ("operations", _operations().encode(), None),
                ("map", MAP, None),
                ("1", CONTENT, None),
            ],
            "needs a filename",
        ),
        (
            [
                ("operations", _operations().encode(), None),
                ("map", MAP, None),
                ("2", CONTENT, "a.txt"),
            ],
            "Expected the file part `1`",
        ),
        (
            [
                ("operations", _operations().encode(), None),
                ("map", b'{"1": ["variables.file"], "2": ["variables.other"]}', None),
                ("1", CONTENT, "a.txt"),
                ("2", CONTENT, "b.txt"),
            ],
            "at most 1 file",
        ),
        (
            [
                ("operations", _operations().encode(), None),
                ("map", b'{"1": ["variables.nope"]}', None),
                ("1", CONTENT, "a.txt"),
            ],
            "is not in `operations`",
        ),
        (
            [
                ("operations", _operations(variables={"file": "x"}).encode(), None),
                ("map", MAP, None),
                ("1", CONTENT, "a.txt"),
            ],
            "must be null",
        ),
        (
            [
                ("operations", _operations().encode(), None),
                ("map", b'{"1": ["query"]}', None),
                ("1", CONTENT, "a.txt"),
            ],
            "must point into `variables`",
        ),
        (
            [
                ("operations", _operations().encode(), None),
                ("map", b'{"1": "variables.file"}', None),
                ("1", CONTENT, "a.txt"),
            ],
            "must be a list",
        ),
    ],
)
def test_a_request_that_breaks_the_multipart_spec_is_a_400(client, fake_files, parts, message):
    body, content_type = _raw(parts)
    headers = {"Apollo-Require-Preflight": "true", "Authorization": f"Bearer {GOOD_TOKEN}"}
    response = client.post(
        "/graphql", content=body, headers={**headers, "Content-Type": content_type}
    )
    assert response.status_code == 400
    assert codes(response) == ["BAD_USER_INPUT"]
    assert message in response.json()["errors"][0]["message"]
    assert fake_files.calls == []


def test_operations_over_the_request_limit_are_refused(make_app, fake_files):
    client = client_of(make_app(MAX_REQUEST_BYTES=2048))
    padded = UPLOAD_MUTATION + " " * 3000
    body, content_type = _raw(
        [("operations", _operations(padded).encode(), None), ("map", MAP, None)]
    )
    response = client.post(
        "/graphql",
        content=body,
        headers={"Apollo-Require-Preflight": "true", "Content-Type": content_type},
    )
    assert response.status_code == 400
    assert "limited to 2048 bytes" in response.json()["errors"][0]["message"]


def test_a_multipart_request_without_files_executes_like_json(client, fake_auth):
    body, content_type = _raw(
        [
            ("operations", json.dumps({"query": "{ me { email } }"}).encode(), None),
            ("map", b"{}", None),
        ]
    )
    headers = {"Apollo-Require-Preflight": "true", "Authorization": "Bearer t"}
    response = client.post(
        "/graphql", content=body, headers={**headers, "Content-Type": content_type}
    )
    assert response.json()["data"] == {"me": {"email": "ada@example.com"}}
    assert "errors" not in response.json()


def test_an_upload_variable_sent_as_json_is_bad_user_input(client, fake_files):
    response = gql(
        client, UPLOAD_MUTATION, {"file": "not a file"}, headers={"Authorization": "Bearer x"}
    )
    assert codes(response) == ["BAD_USER_INPUT"]
    assert "multipart" in response.json()["errors"][0]["message"]
    assert fake_files.calls == []
