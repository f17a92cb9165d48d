"""processing.process_file and the reaper's query against PostgreSQL, on both storage backends."""

from __future__ import annotations

import hashlib
import uuid

import pytest
from sqlalchemy import text

from services.files import processing
from services.files.tests.conftest import upload
from services.files.tests.content import wc_counts
from services.files.tests.outages import OutageSwitch


def ctx(app):
    return app.extensions["files"]


def process(app, file_id: str) -> processing.ProcessingOutcome:
    files = ctx(app)
    return processing.process_file(
        files.uow(), storage=files.storage, file_id=uuid.UUID(file_id), policy=files.processing
    )


def row(app, file_id: str):
    with ctx(app).engine.connect() as conn:
        return conn.execute(text("SELECT * FROM files WHERE id = :id"), {"id": file_id}).first()


def execute(app, sql: str, **params) -> None:
    with ctx(app).engine.begin() as conn:
        conn.execute(text(sql), params)


def events(app, file_id: str) -> list[tuple[str, dict]]:
    with ctx(app).engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT event_type, payload FROM outbox WHERE aggregate_id = :id ORDER BY sequence"
            ),
            {"id": file_id},
        )
        return [(r.event_type, r.payload) for r in rows]


def results(file_row) -> tuple:
    return (
        file_row.status,
        file_row.mime_type,
        file_row.encoding,
        file_row.line_count,
        file_row.word_count,
        file_row.extra,
        file_row.error,
    )


def replace_content(app, key: str, content: bytes) -> None:
    storage = ctx(app).storage
    if hasattr(storage, "client"):
        storage.client.put_object(Bucket=storage.bucket, Key=key, Body=content)
    else:
        storage._path(key).write_bytes(content)


@pytest.fixture
def uploaded(client, user):
    def make(content: bytes = b"hello world\nsecond line\n", filename: str = "notes.txt") -> str:
        response = upload(client, user, content, filename=filename)
        assert response.status_code == 201, response.json
        return response.json["id"]

    return make


def test_processing_records_results_and_raises_started_then_processed(app, uploaded):
    content = "one two\nthree 四 five\n".encode()
    file_id = uploaded(content)
    assert process(app, file_id) is processing.ProcessingOutcome.PROCESSED
    done = row(app, file_id)
    assert (done.line_count, done.word_count) == wc_counts(content)
    assert (done.status, done.mime_type, done.encoding) == ("PROCESSED", "text/plain", "utf-8")
    assert done.processed_at is not None and done.error is None
    assert done.processing_token is None and done.lease_expires_at is None and done.attempts == 1
    kinds = [kind for kind, _ in events(app, file_id)]
    assert kinds == ["FileUploaded", "FileProcessingStarted", "FileProcessed"]
    payload = events(app, file_id)[-1][1]
    assert payload["status"] == "PROCESSED" and payload["error"] is None
    assert payload["owner_id"] == str(done.owner_id) and payload["filename"] == "notes.txt"
    assert payload["sha256"] == hashlib.sha256(content).hexdigest()
    assert payload["results"] == {
        "mime_type": "text/plain",
        "encoding": "utf-8",
        "line_count": 2,
        "word_count": 5,
        "extra": {},
    }
    assert payload["created_at"] and payload["processed_at"]


def test_processing_is_idempotent(app, uploaded):
    file_id = uploaded(b"same content, same results\n" * 1000)
    process(app, file_id)
    first = row(app, file_id)
    assert process(app, file_id) is processing.ProcessingOutcome.ALREADY_DONE
    assert row(app, file_id) == first
    # Processing the same stored content again from scratch stores exactly the same results.
    execute(
        app,
        "UPDATE files SET status = 'UPLOADED', mime_type = NULL, encoding = NULL,"
        " line_count = NULL, word_count = NULL, extra = '{}', processed_at = NULL WHERE id = :id",
        id=file_id,
    )
    assert process(app, file_id) is processing.ProcessingOutcome.PROCESSED
    assert results(row(app, file_id)) == results(first)


def test_a_live_claim_keeps_other_workers_off(app, uploaded):
    file_id = uploaded()
    execute(
        app,
        "UPDATE files SET status = 'PROCESSING', processing_token = gen_random_uuid(),"
        " lease_expires_at = now() + interval '30 seconds' WHERE id = :id",
        id=file_id,
    )
    with pytest.raises(processing.FileBusy) as busy:
        process(app, file_id)
    assert 25 < busy.value.retry_after <= 30


def test_a_lapsed_claim_is_taken_over(app, uploaded):
    file_id = uploaded()
    execute(
        app,
        "UPDATE files SET status = 'PROCESSING', processing_token = gen_random_uuid(),"
        " attempts = 1, lease_expires_at = now() - interval '1 second' WHERE id = :id",
        id=file_id,
    )
    assert process(app, file_id) is processing.ProcessingOutcome.PROCESSED
    assert row(app, file_id).attempts == 2
    # Taking over a file already PROCESSING is not a new start.
    assert [kind for kind, _ in events(app, file_id)][-2:] == ["FileUploaded", "FileProcessed"]


def test_a_file_that_never_finishes_fails_after_the_last_attempt(app, uploaded):
    file_id = uploaded()
    attempts = ctx(app).processing.max_attempts
    execute(
        app,
        "UPDATE files SET status = 'PROCESSING', attempts = :n,"
        " lease_expires_at = now() - interval '1 second' WHERE id = :id",
        id=file_id,
        n=attempts,
    )
    assert process(app, file_id) is processing.ProcessingOutcome.FAILED
    failed = row(app, file_id)
    assert failed.status == "FAILED"
    assert failed.error.startswith(f"Processing was started {attempts} times and never finished")
    kind, payload = events(app, file_id)[-1]
    assert kind == "FileProcessingFailed" and payload["error"] == failed.error


def test_content_that_does_not_match_the_upload_fails_with_a_readable_error(app, uploaded):
    file_id = uploaded(b"original\n")
    replace_content(app, row(app, file_id).storage_key, b"tampered\n")
    assert process(app, file_id) is processing.ProcessingOutcome.FAILED
    failed = row(app, file_id)
    assert failed.error.startswith("The stored content does not match the upload: 9 bytes")
    assert failed.line_count is None


def test_missing_content_fails(app, uploaded):
    file_id = uploaded()
    ctx(app).storage.delete(row(app, file_id).storage_key)
    assert process(app, file_id) is processing.ProcessingOutcome.FAILED
    assert row(app, file_id).error == "The stored content is missing."


def test_a_deleted_file_is_not_processed(app, uploaded):
    assert process(app, str(uuid.uuid4())) is processing.ProcessingOutcome.GONE


def test_unreachable_storage_is_transient_and_releases_the_claim(make_app, user, storage_settings):
    with OutageSwitch(storage_settings) as switch:
        app = make_app(**switch.settings)
        response = upload(app.test_client(), user)
        assert response.status_code == 201, response.json
        file_id = response.json["id"]
        with (
            switch.down(),
            pytest.raises(processing.ProcessingUnavailable, match="storage unreachable"),
        ):
            process(app, file_id)
        released = row(app, file_id)
        assert released.status == "PROCESSING" and released.processing_token is None
        # A transient outage is not one of the attempts that end a file FAILED.
        assert released.attempts == 0
        assert process(app, file_id) is processing.ProcessingOutcome.PROCESSED
        assert row(app, file_id).attempts == 1


def test_the_reaper_finds_lapsed_claims_and_long_waiting_uploads_once(app, uploaded):
    lapsed, waiting, fresh, busy = uploaded(), uploaded(), uploaded(), uploaded()
    execute(
        app,
        "UPDATE files SET status = 'PROCESSING', processing_token = gen_random_uuid(),"
        " lease_expires_at = now() - interval '1 second' WHERE id = :id",
        id=lapsed,
    )
    execute(
        app,
        "UPDATE files SET status = 'PROCESSING', processing_token = gen_random_uuid(),"
        " lease_expires_at = now() + interval '1 minute' WHERE id = :id",
        id=busy,
    )
    execute(
        app, "UPDATE files SET created_at = now() - interval '1 hour' WHERE id = :id", id=waiting
    )

    def sweep():
        found = processing.requeue_stalled_files(
            ctx(app).uow(), lease_seconds=60, stale_upload_seconds=600
        )
        return {str(i) for i in found} & {lapsed, waiting, fresh, busy}

    assert sweep() == {lapsed, waiting}
    assert sweep() == set()
    assert row(app, lapsed).processing_token is None
    assert process(app, lapsed) is processing.ProcessingOutcome.PROCESSED
