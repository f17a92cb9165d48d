"""The files REST API against PostgreSQL, run once per storage backend (local directory, S3)."""

from __future__ import annotations

import hashlib
import io
import threading
import uuid

import pytest
import requests
from sqlalchemy import text

from services.files import processing
from services.files.tests.conftest import (
    file_rows,
    multipart_body,
    stored_keys,
    upload,
    used_bytes,
)


def outbox_events(app, file_id: str) -> list[tuple[str, dict]]:
    """(type, payload) of the outbox rows of one file, in order."""
    with app.extensions["files"].engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT event_type, payload FROM outbox"
                " WHERE aggregate_type = 'file' AND aggregate_id = :id ORDER BY sequence"
            ),
            {"id": file_id},
        )
        return [(row.event_type, row.payload) for row in rows]


def test_upload_detail_list_download_and_delete_round_trip(app, client, user):
    content = b"line one\nline two\n"
    created = upload(client, user, content, filename="notes.txt", content_type="text/plain")
    assert created.status_code == 201, created.json
    body = created.json
    file_id = body["id"]
    assert created.headers["Location"].endswith(f"/v1/files/{file_id}")
    assert body["owner_id"] == user.id
    assert body["filename"] == body["original_filename"] == "notes.txt"
    assert body["content_type"] == "text/plain"
    assert body["size"] == len(content)
    assert body["sha256"] == hashlib.sha256(content).hexdigest()
    assert body["status"] == "UPLOADED"
    assert body["mime_type"] is None and body["line_count"] is None and body["extra"] == {}
    assert len(stored_keys(app)) == 1
    assert used_bytes(app, user.id) == len(content)

    assert client.get(f"/v1/files/{file_id}", headers=user.headers).json == body

    listed = client.get("/v1/files", headers=user.headers).json
    assert listed["total_count"] == 1
    assert [edge["node"]["id"] for edge in listed["edges"]] == [file_id]
    assert listed["page_info"]["has_next_page"] is False

    download = client.get(f"/v1/files/{file_id}/content", headers=user.headers)
    assert download.status_code == 200
    assert download.data == content
    assert download.headers["Content-Type"] == "text/plain"
    assert download.headers["Content-Length"] == str(len(content))
    assert download.headers["ETag"] == f'"{body["sha256"]}"'
    assert download.headers["Accept-Ranges"] == "bytes"
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    assert download.headers["Content-Disposition"].startswith('attachment; filename="notes.txt"')

    head = client.head(f"/v1/files/{file_id}/content", headers=user.headers)
    assert head.status_code == 200 and head.data == b""
    assert head.headers["Content-Length"] == str(len(content))

    deleted = client.delete(f"/v1/files/{file_id}", headers=user.headers)
    assert deleted.status_code == 204
    assert client.get(f"/v1/files/{file_id}", headers=user.headers).status_code == 404
    assert client.get(f"/v1/files/{file_id}/content", headers=user.headers).status_code == 404
    assert client.delete(f"/v1/files/{file_id}", headers=user.headers).status_code == 404
    assert stored_keys(app) == []
    assert file_rows(app, user.id) == 0
    assert used_bytes(app, user.id) == 0
    assert client.get("/v1/files", headers=user.headers).json["total_count"] == 0


def test_upload_and_delete_write_events_to_the_outbox(app, client, user):
    file_id = upload(client, user, b"12345", filename="five.bin").json["id"]
    client.delete(f"/v1/files/{file_id}", headers=user.headers)
    events = outbox_events(app, file_id)
    assert [event_type for event_type, _ in events] == ["FileUploaded", "FileDeleted"]
    for _, payload in events:
        assert payload["file_id"] == file_id
        assert payload["owner_id"] == user.id
        assert payload["filename"] == "five.bin"
        assert payload["size"] == 5


def test_download_answers_single_byte_ranges_with_206(client, user):
    content = bytes(range(256)) * 4
    file_id = upload(client, user, content).json["id"]
    url = f"/v1/files/{file_id}/content"
    cases = {
        "bytes=0-9": (0, 10),
        "bytes=1000-": (1000, 1024),
        "bytes=-24": (1000, 1024),
        "bytes=1020-5000": (1020, 1024),
        "bytes=-5000": (0, 1024),
    }
    for header, (start, end) in cases.items():
        response = client.get(url, headers={**user.headers, "Range": header})
        assert response.status_code == 206, header
        assert response.data == content[start:end], header
        assert response.headers["Content-Range"] == f"bytes {start}-{end - 1}/1024"
        assert response.headers["Content-Length"] == str(end - start)


def test_download_answers_unsatisfiable_ranges_with_416(client, user):
    file_id = upload(client, user, b"x" * 100).json["id"]
    response = client.get(
        f"/v1/files/{file_id}/content", headers={**user.headers, "Range": "bytes=100-200"}
    )
    assert response.status_code == 416
    assert response.headers["Content-Range"] == "bytes */100"
    assert response.json["code"] == "RANGE_NOT_SATISFIABLE"


def test_download_sends_everything_for_multiple_malformed_or_stale_ranges(client, user):
    content = b"0123456789"
    created = upload(client, user, content).json
    url = f"/v1/files/{created['id']}/content"
    for headers in (
        {"Range": "bytes=0-1,4-5"},
        {"Range": "bytes=oops"},
        {"Range": "lines=1-2"},
        {"Range": "bytes=0-1", "If-Range": '"not-the-etag"'},
    ):
        response = client.get(url, headers={**user.headers, **headers})
        assert response.status_code == 200, headers
        assert response.data == content
    current = client.get(
        url, headers={**user.headers, "Range": "bytes=0-1", "If-Range": f'"{created["sha256"]}"'}
    )
    assert current.status_code == 206 and current.data == b"01"


def test_download_answers_304_when_the_etag_matches(client, user):
    created = upload(client, user, b"cache me").json
    url = f"/v1/files/{created['id']}/content"
    for value in (
        f'"{created["sha256"]}"',
        f'W/"{created["sha256"]}"',
        f'"a", "{created["sha256"]}"',
        "*",
    ):
        response = client.get(url, headers={**user.headers, "If-None-Match": value})
        assert response.status_code == 304, value
        assert response.data == b""
        assert response.headers["ETag"] == f'"{created["sha256"]}"'
    stale = client.get(url, headers={**user.headers, "If-None-Match": '"other"'})
    assert stale.status_code == 200 and stale.data == b"cache me"


def process(app, file_id: str) -> None:
    """Run the worker's processing of one file here, so what the API shows changes."""
    files = app.extensions["files"]
    outcome = processing.process_file(
        files.uow(), storage=files.storage, file_id=uuid.UUID(file_id), policy=files.processing
    )
    assert outcome is processing.ProcessingOutcome.PROCESSED


def test_download_honours_if_range_by_etag_and_by_date(client, user):
    created = upload(client, user, b"0123456789").json
    url = f"/v1/files/{created['id']}/content"
    last_modified = client.get(url, headers=user.headers).headers["Last-Modified"]
    for if_range in (f'"{created["sha256"]}"', last_modified):
        partial = client.get(
            url, headers={**user.headers, "Range": "bytes=2-3", "If-Range": if_range}
        )
        assert (partial.status_code, partial.data) == (206, b"23"), if_range
    stale = client.get(
        url,
        headers={**user.headers, "Range": "bytes=2-3", "If-Range": "Sat, 01 Jan 2000 00:00:00 GMT"},
    )
    assert (stale.status_code, stale.data) == (200, b"0123456789")


def test_a_files_details_answer_304_while_its_etag_is_current(client, user):
    url = f"/v1/files/{upload(client, user).json['id']}"
    first = client.get(url, headers=user.headers)
    etag = first.headers["ETag"]
    assert first.status_code == 200 and first.headers["Cache-Control"] == "private, no-cache"
    for value in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        again = client.get(url, headers={**user.headers, "If-None-Match": value})
        assert (again.status_code, again.data) == (304, b""), value
        assert again.headers["ETag"] == etag
    stale = client.get(url, headers={**user.headers, "If-None-Match": '"other"'})
    assert stale.status_code == 200 and stale.json == first.json


def test_a_files_etag_changes_when_processing_changes_what_it_shows(app, client, user):
    file_id = upload(client, user, b"two words\n").json["id"]
    url = f"/v1/files/{file_id}"
    before = client.get(url, headers=user.headers)
    process(app, file_id)
    after = client.get(url, headers={**user.headers, "If-None-Match": before.headers["ETag"]})
    assert after.status_code == 200
    assert (after.json["status"], after.json["word_count"]) == ("PROCESSED", 2)
    assert after.headers["ETag"] != before.headers["ETag"]
    unchanged = client.get(url, headers={**user.headers, "If-None-Match": after.headers["ETag"]})
    assert unchanged.status_code == 304


def test_another_user_gets_404_whatever_etag_they_send(client, user, make_user):
    url = f"/v1/files/{upload(client, user).json['id']}"
    etag = client.get(url, headers=user.headers).headers["ETag"]
    stranger = make_user()
    for path in (url, f"{url}/content"):
        response = client.get(path, headers={**stranger.headers, "If-None-Match": etag})
        assert response.status_code == 404, path
        assert "ETag" not in response.headers


def test_the_lists_etag_changes_with_an_upload_a_deletion_or_processing(app, client, user):
    file_id = upload(client, user).json["id"]

    def etag_after(change) -> str:
        before = client.get("/v1/files", headers=user.headers).headers["ETag"]
        same = client.get("/v1/files", headers={**user.headers, "If-None-Match": before})
        assert (same.status_code, same.data) == (304, b"")
        change()
        changed = client.get("/v1/files", headers={**user.headers, "If-None-Match": before})
        assert changed.status_code == 200 and changed.headers["ETag"] != before
        return changed.headers["ETag"]

    etag_after(lambda: process(app, file_id))
    second = None

    def upload_another() -> None:
        nonlocal second
        second = upload(client, user).json["id"]

    etag_after(upload_another)
    etag_after(lambda: client.delete(f"/v1/files/{second}", headers=user.headers))
    upload(client, user)
    pages = {
        query: client.get(f"/v1/files?{query}", headers=user.headers).headers["ETag"]
        for query in ("first=1", "first=2")
    }
    assert len(set(pages.values())) == 2


def test_download_names_the_file_rfc_5987_encoded(client, user):
    file_id = upload(client, user, b"x", filename="résumé “final”.txt").json["id"]
    response = client.get(f"/v1/files/{file_id}/content", headers=user.headers)
    assert response.headers["Content-Disposition"] == (
        'attachment; filename="resume final.txt"; '
        "filename*=UTF-8''r%C3%A9sum%C3%A9%20%E2%80%9Cfinal%E2%80%9D.txt"
    )


def test_a_file_whose_stored_content_was_lost_answers_410_gone(app, client, user):
    created = upload(client, user, b"soon gone\n")
    assert created.status_code == 201, created.json
    (key,) = stored_keys(app)
    app.extensions["files"].storage.delete(key)
    response = client.get(f"/v1/files/{created.json['id']}/content", headers=user.headers)
    assert response.status_code == 410
    assert response.json["code"] == "GONE"
    assert response.json["message"] == "The content of this file is no longer stored."


def test_another_users_file_answers_404_like_a_missing_one(client, make_user):
    owner, stranger = make_user(), make_user()
    file_id = upload(client, owner).json["id"]
    missing = str(uuid.uuid4())
    for path in ("/v1/files/{}", "/v1/files/{}/content"):
        theirs = client.get(path.format(file_id), headers=stranger.headers)
        nobodys = client.get(path.format(missing), headers=stranger.headers)
        assert theirs.status_code == nobodys.status_code == 404
        assert theirs.json == nobodys.json
    assert client.delete(f"/v1/files/{file_id}", headers=stranger.headers).status_code == 404
    assert client.get("/v1/files", headers=stranger.headers).json["total_count"] == 0
    assert client.get(f"/v1/files/{file_id}", headers=owner.headers).status_code == 200


@pytest.mark.parametrize("bad_id", ["not-a-uuid", "123", "00000000-0000-0000-0000-00000000000g"])
def test_malformed_file_ids_are_400(client, user, bad_id):
    for method, path in (
        ("get", f"/v1/files/{bad_id}"),
        ("get", f"/v1/files/{bad_id}/content"),
        ("delete", f"/v1/files/{bad_id}"),
    ):
        response = getattr(client, method)(path, headers=user.headers)
        assert response.status_code == 400, path
        assert response.json["code"] == "BAD_USER_INPUT"
        assert "file_id" in response.json["fields"]


def test_every_endpoint_requires_a_token(client, user):
    file_id = upload(client, user).json["id"]
    for method, path in (
        ("get", "/v1/files"),
        ("post", "/v1/files"),
        ("get", f"/v1/files/{file_id}"),
        ("delete", f"/v1/files/{file_id}"),
        ("get", f"/v1/files/{file_id}/content"),
    ):
        for headers in ({}, {"Authorization": "Bearer not.a.token"}):
            response = getattr(client, method)(path, headers=headers)
            assert response.status_code == 401, (method, path, headers)
            assert response.json["code"] == "UNAUTHENTICATED"
    assert client.get(f"/v1/files/{file_id}", headers=user.headers).status_code == 200


def test_a_token_issued_by_the_auth_service_is_accepted(client, auth_server):
    tokens = requests.post(
        f"{auth_server.url}/v1/auth/register",
        json={
            "email": f"files-{uuid.uuid4().hex[:12]}@example.com",
            "password": "rusty anchor at dawn",
        },
        timeout=10,
    ).json()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    created = client.post(
        "/v1/files",
        data={"file": (io.BytesIO(b"mine"), "mine.txt")},
        headers=headers,
        content_type="multipart/form-data",
    )
    assert created.status_code == 201
    assert created.json["owner_id"] == tokens["user"]["id"]


def test_pagination_has_no_duplicates_or_gaps_while_files_are_inserted(app, client, user):
    existing = {upload(client, user, f"file {n}".encode()).json["id"] for n in range(23)}
    stop = threading.Event()
    inserted: list[str] = []

    def keep_inserting():
        writer = app.test_client()
        while not stop.is_set():
            inserted.append(upload(writer, user, b"late").json["id"])

    writer = threading.Thread(target=keep_inserting)
    writer.start()
    try:
        seen: list[dict] = []
        after = None
        while True:
            query = {"first": 5} | ({"after": after} if after else {})
            page = client.get("/v1/files", query_string=query, headers=user.headers).json
            assert len(page["edges"]) <= 5
            seen.extend(edge["node"] for edge in page["edges"])
            upload(client, user, b"between pages")
            if not page["page_info"]["has_next_page"]:
                break
            after = page["page_info"]["end_cursor"]
    finally:
        stop.set()
        writer.join()
    ids = [item["id"] for item in seen]
    assert len(ids) == len(set(ids)), "a file was listed twice"
    assert existing <= set(ids), "a file that existed before paging began was skipped"
    keys = [(item["created_at"], item["id"]) for item in seen]
    assert keys == sorted(keys, reverse=True), "not newest first"
    assert len(inserted) > 0


def test_list_rejects_bad_page_arguments(client, user):
    for query in (
        {"first": 0},
        {"first": 101},
        {"first": "ten"},
        {"after": "not-a-cursor"},
        {"after": "W10"},
        {"after": "x" * 500},
    ):
        response = client.get("/v1/files", query_string=query, headers=user.headers)
        assert response.status_code == 400, query
        assert response.json["code"] == "BAD_USER_INPUT"
        assert set(response.json["fields"]) <= {"first", "after"}


@pytest.mark.parametrize(
    ("sent", "shown", "original"),
    [
        ("../../etc/passwd", "passwd", "passwd"),
        ("C:\\Users\\ann\\report.pdf", "report.pdf", "report.pdf"),
        ("..", "file", "file"),
        ("", "file", "file"),
        ("  .hidden  ", "hidden", "hidden"),
        ("bell\x07tab\tname.txt", "bell tab name.txt", "bell tab name.txt"),
        ("invoice\u202efdp.exe", "invoicefdp.exe", "invoicefdp.exe"),
        ("\u2067dir/\u200fa\u2066b\u2069.txt\u202c", "ab.txt", "ab.txt"),
        ('what?<is>"this"*.txt', "what__is__this__.txt", 'what?<is>"this"*.txt'),
        ("CON.txt", "_CON.txt", "CON.txt"),
        ("é" * 300 + ".txt", "é" * 125 + ".txt", "é" * 125 + ".txt"),
    ],
)
def test_upload_sanitizes_the_filename_and_the_original(client, user, sent, shown, original):
    # Sent as an RFC 7578 quoted string; werkzeug's test client would not escape `"` or `\`.
    quoted = sent.replace("\\", "\\\\").replace('"', '\\"')
    body, content_type = multipart_body(b"x", filename=quoted)
    created = client.post("/v1/files", data=body, content_type=content_type, headers=user.headers)
    assert created.status_code == 201, created.json
    assert created.json["filename"] == shown
    assert created.json["original_filename"] == original
    listed = client.get(f"/v1/files/{created.json['id']}", headers=user.headers)
    assert listed.json["original_filename"] == original


def test_upload_rejects_a_body_that_is_not_a_multipart_file(app, client, user):
    cases = [
        {"json": {"file": "nope"}},
        {"data": b"raw bytes", "content_type": "application/octet-stream"},
        {"data": {"other": "field"}, "content_type": "multipart/form-data"},
        {
            "data": b'--b\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nab',
            "content_type": "multipart/form-data; boundary=b",
        },
    ]
    for kwargs in cases:
        response = client.post("/v1/files", headers=user.headers, **kwargs)
        assert response.status_code == 400, kwargs
        assert response.json["code"] == "BAD_USER_INPUT"
        assert "file" in response.json["fields"]
    assert stored_keys(app) == []
    assert file_rows(app, user.id) == 0


def test_upload_rejects_two_files_in_one_body(app, client, user):
    response = client.post(
        "/v1/files",
        data={"file": [(io.BytesIO(b"a"), "a"), (io.BytesIO(b"b"), "b")]},
        headers=user.headers,
        content_type="multipart/form-data",
    )
    assert response.status_code == 400
    assert stored_keys(app) == []
    assert file_rows(app, user.id) == 0


def test_upload_accepts_fields_around_the_file(client, user):
    body, content_type = multipart_body(b"payload")
    extra = b'--b0undary\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n'
    response = client.post(
        "/v1/files", data=extra + body, content_type=content_type, headers=user.headers
    )
    assert response.status_code == 201, response.json
    assert response.json["size"] == len(b"payload")


@pytest.mark.parametrize(
    ("filename", "content_type", "content"),
    [
        ("page.html", "text/html", b"<script>alert(document.cookie)</script>"),
        ("logo.svg", "image/svg+xml", b'<svg xmlns="http://www.w3.org/2000/svg" onload="x()"/>'),
        ("feed.xml", "application/xml", b"<?xml version='1.0'?><a/>"),
        ("page.xhtml", "application/xhtml+xml", b"<html xmlns='http://www.w3.org/1999/xhtml'/>"),
        ("run.js", "text/javascript", b"alert(1)"),
        ("notes.txt", "text/plain", b"<html><script>sniff me</script>"),
    ],
)
def test_every_download_is_a_sandboxed_unsniffed_attachment(
    client, user, filename, content_type, content
):
    created = upload(client, user, content, filename=filename, content_type=content_type)
    url = f"/v1/files/{created.json['id']}/content"
    for headers in ({}, {"Range": "bytes=0-4"}):
        response = client.get(url, headers={**user.headers, **headers})
        assert response.status_code in (200, 206)
        assert response.headers["Content-Disposition"] == (
            f"attachment; filename=\"{filename}\"; filename*=UTF-8''{filename}"
        )
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
