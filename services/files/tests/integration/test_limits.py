"""Upload size limits, quotas and failures leave no stored object and no row behind."""

from __future__ import annotations

import io
import threading
from functools import partial
from pathlib import Path

import requests
from sqlalchemy import text

from services.files.models import SCHEMA
from services.files.multipart import MAX_OVERHEAD_BYTES
from services.files.tests.conftest import (
    file_rows,
    multipart_body,
    stored_keys,
    upload,
    used_bytes,
)
from services.files.tests.outages import OutageSwitch
from shared.db import UnitOfWork, session_factory
from shared.testing import ServerThread

LIMIT = 1000


class UnreadableStream(io.RawIOBase):
    """A request body of `size` bytes that fails the test if the service reads any of it."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        # The test client measures the body by seeking to its end.
        self.position = self.size + offset if whence == io.SEEK_END else offset
        return self.position

    def tell(self) -> int:
        return self.position

    def readinto(self, _buffer) -> int:
        raise AssertionError("the body was read although its Content-Length was refused")


def assert_nothing_stored(app, user) -> None:
    """Neither an object in storage nor a row for the user."""
    assert stored_keys(app) == []
    assert file_rows(app, user.id) == 0


def test_an_upload_of_exactly_the_limit_is_accepted(make_app, user):
    app = make_app(MAX_UPLOAD_BYTES=LIMIT)
    response = upload(app.test_client(), user, b"x" * LIMIT)
    assert response.status_code == 201, response.json
    assert response.json["size"] == LIMIT


def test_a_declared_length_over_the_limit_is_refused_before_reading(make_app, user):
    app = make_app(MAX_UPLOAD_BYTES=LIMIT)
    _, content_type = multipart_body(b"")
    response = app.test_client().post(
        "/v1/files",
        input_stream=UnreadableStream(LIMIT + MAX_OVERHEAD_BYTES + 1),
        content_type=content_type,
        headers=user.headers,
    )
    assert response.status_code == 413
    assert response.json["code"] == "PAYLOAD_TOO_LARGE"
    assert str(LIMIT) in response.json["message"]
    assert_nothing_stored(app, user)


def test_a_file_over_the_limit_is_refused_while_streaming(make_app, user):
    app = make_app(MAX_UPLOAD_BYTES=LIMIT)
    response = upload(app.test_client(), user, b"x" * (LIMIT + 1))
    assert response.status_code == 413
    assert response.json["code"] == "PAYLOAD_TOO_LARGE"
    assert_nothing_stored(app, user)


def test_a_chunked_body_over_the_limit_is_refused_while_streaming(make_app, user):
    app = make_app(MAX_UPLOAD_BYTES=LIMIT)
    body, content_type = multipart_body(b"x" * (LIMIT * 50))
    response = app.test_client().post(
        "/v1/files",
        input_stream=io.BytesIO(body),
        content_type=content_type,
        headers=user.headers,
        # What a server decoding a chunked body passes on: no Content-Length, a terminated input.
        environ_overrides={"HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input_terminated": True},
    )
    assert response.status_code == 413
    assert response.json["code"] == "PAYLOAD_TOO_LARGE"
    assert_nothing_stored(app, user)


def test_a_chunked_upload_over_real_http_is_refused_with_413(make_app, user):
    limit = 2 * 1024 * 1024
    app = make_app(MAX_UPLOAD_BYTES=limit)
    _, content_type = multipart_body(b"")
    head, tail = multipart_body(b"|")[0].split(b"|")

    def chunks():
        yield head
        for _ in range(6):
            yield b"z" * (1024 * 1024)
        yield tail

    with ServerThread(app) as server:
        response = requests.post(
            f"{server.url}/v1/files",
            data=chunks(),
            headers={**user.headers, "Content-Type": content_type},
            timeout=30,
        )
    assert response.status_code == 413
    assert response.json()["code"] == "PAYLOAD_TOO_LARGE"
    assert_nothing_stored(app, user)


def test_upload_rejects_files_over_quota_and_deleting_frees_room(make_app, user, make_user):
    app = make_app(USER_QUOTA_BYTES=3000)
    client = app.test_client()
    first = upload(client, user, b"a" * 2000)
    assert first.status_code == 201

    over = upload(client, user, b"b" * 1001)
    assert over.status_code == 413
    assert over.json["code"] == "QUOTA_EXCEEDED"
    assert "quota" in over.json["message"].lower()
    assert len(stored_keys(app)) == 1
    assert file_rows(app, user.id) == 1
    assert used_bytes(app, user.id) == 2000

    assert upload(client, user, b"c" * 1000).status_code == 201
    assert upload(client, make_user(), b"d" * 3000).status_code == 201, "quota is per user"
    assert client.delete(f"/v1/files/{first.json['id']}", headers=user.headers).status_code == 204
    assert upload(client, user, b"e" * 2000).status_code == 201


def test_concurrent_uploads_cannot_overrun_the_quota_together(make_app, user):
    app = make_app(USER_QUOTA_BYTES=3000)
    barrier = threading.Barrier(4)
    statuses = []

    def race():
        client = app.test_client()
        barrier.wait()
        response = upload(client, user, b"r" * 2000)
        statuses.append((response.status_code, response.json.get("code")))

    threads = [threading.Thread(target=race) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses, key=str) == [(201, None)] + [(413, "QUOTA_EXCEEDED")] * 3
    assert len(stored_keys(app)) == 1
    assert file_rows(app, user.id) == 1
    assert used_bytes(app, user.id) == 2000


def test_a_declared_length_over_the_quota_is_refused_before_reading(make_app, user):
    app = make_app(USER_QUOTA_BYTES=LIMIT)
    _, content_type = multipart_body(b"")
    response = app.test_client().post(
        "/v1/files",
        input_stream=UnreadableStream(LIMIT + MAX_OVERHEAD_BYTES + 1),
        content_type=content_type,
        headers=user.headers,
    )
    assert response.status_code == 413
    assert response.json["code"] == "QUOTA_EXCEEDED"
    assert_nothing_stored(app, user)


class CommitFailsUnitOfWork(UnitOfWork):
    """A unit of work whose commit fails in the database, after the row was flushed."""

    def commit(self) -> None:
        self.session.execute(text("SELECT 1 / 0"))


def test_a_database_failure_after_the_storage_write_leaves_no_orphan_object(make_app, user):
    app = make_app()
    ctx = app.extensions["files"]
    ctx.uow = partial(
        CommitFailsUnitOfWork, session_factory(ctx.engine), schema=SCHEMA, source="files"
    )
    response = upload(app.test_client(), user, b"x" * 5000)
    assert response.status_code == 500
    assert response.json["code"] == "INTERNAL_SERVER_ERROR"
    assert_nothing_stored(app, user)
    assert used_bytes(app, user.id) == 0


def test_a_truncated_body_leaves_nothing_behind(make_app, user):
    app = make_app()
    body, content_type = multipart_body(b"y" * 100_000)
    response = app.test_client().post(
        "/v1/files", data=body[:-200], content_type=content_type, headers=user.headers
    )
    assert response.status_code == 400
    assert_nothing_stored(app, user)


def test_an_upload_while_storage_is_down_answers_503_and_leaves_no_row(
    make_app, user, storage_settings
):
    before = b"stored before the outage\n"
    with OutageSwitch(storage_settings) as switch:
        app = make_app(**switch.settings)
        client = app.test_client()
        kept = upload(client, user, before)
        assert kept.status_code == 201, kept.json
        # Local: the directory moved away, as by an unmounted volume; s3: a refused connection.
        with switch.down():
            response = upload(client, user, b"sent during the outage\n")
            download = client.get(f"/v1/files/{kept.json['id']}/content", headers=user.headers)
            ready = client.get("/readyz")
            if switch.backend == "local":
                assert not Path(switch.settings["STORAGE_DIR"]).exists()
        assert response.status_code == 503, response.json
        assert response.json == {
            "status": 503,
            "code": "SERVICE_UNAVAILABLE",
            "message": "File storage is unavailable. Try again later.",
        }
        assert download.status_code == 503
        assert download.json["code"] == "SERVICE_UNAVAILABLE"
        assert (ready.status_code, ready.json["fields"]) == (503, {"storage": "StorageUnavailable"})
        assert file_rows(app, user.id) == 1
        assert used_bytes(app, user.id) == len(before)
        assert len(stored_keys(app)) == 1
        assert upload(client, user, b"sent once it is back\n").status_code == 201
