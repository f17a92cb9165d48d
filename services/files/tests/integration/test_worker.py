"""Asynchronous processing end to end: REST upload, relay, consumer, Celery worker and beat.

Every process is real and separate (`dockyard relay files`, `dockyard consume files`,
`celery worker`, `celery beat`); the module runs once per storage backend.
"""

from __future__ import annotations

import hashlib
import os
import signal
from pathlib import Path

import pytest
from sqlalchemy import text

from services.files.tests.conftest import upload
from services.files.tests.content import EDGE_CASES, wc_counts, write_generated
from services.files.tests.integration.conftest import LEASE_SECONDS, pause

MB = 1024 * 1024


def uploaded(stack, user, content: bytes, filename: str = "notes.txt") -> str:
    response = upload(stack.app.test_client(), user, content, filename=filename)
    assert response.status_code == 201, response.json
    return response.json["id"]


def test_an_upload_is_processed(stack, user):
    content = b"The quick brown fox\njumps over\tthe lazy dog.\n"
    file_id = uploaded(stack, user, content)
    stack.wait_for_status(file_id, "PROCESSED", timeout=30)
    client = stack.app.test_client()
    body = client.get(f"/v1/files/{file_id}", headers=user.headers).json
    assert body["status"] == "PROCESSED"
    assert (body["line_count"], body["word_count"]) == wc_counts(content)
    assert body["sha256"] == hashlib.sha256(content).hexdigest()
    assert (body["mime_type"], body["encoding"], body["error"]) == ("text/plain", "ascii", None)
    assert body["extra"] == {
        "tally": {"bytes": len(content), "starts_with": content[:4].hex(), "declared": "text/plain"}
    }
    assert body["processed_at"] is not None


@pytest.mark.parametrize("name", sorted(EDGE_CASES))
def test_stored_counts_match_wc_on_edge_cases(stack, user, name):
    content = EDGE_CASES[name]
    file_id = uploaded(stack, user, content, filename=f"{name}.bin")
    done = stack.wait_for_status(file_id, "PROCESSED", timeout=30)
    assert (done.line_count, done.word_count) == wc_counts(content)
    assert done.size == len(content)


def test_a_100_mb_generated_file_matches_wc_and_sha256(stack, user, tmp_path):
    path = write_generated(tmp_path / "big.txt", 100 * MB, seed=11)
    content = path.read_bytes()
    file_id = uploaded(stack, user, content, filename="big.txt")
    del content
    done = stack.wait_for_status(file_id, "PROCESSED", timeout=120)
    assert (done.line_count, done.word_count) == wc_counts(path=path)
    assert done.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert done.size == 100 * MB


def test_a_broken_extra_processor_is_reported_and_the_file_still_processed(stack, user):
    file_id = uploaded(stack, user, b"fine content\n", filename="broken-plugin.txt")
    done = stack.wait_for_status(file_id, "PROCESSED", timeout=30)
    assert done.extra["broken"] == {"error": "RuntimeError: this processor is broken on purpose"}
    assert done.line_count == 1


def test_tampered_content_ends_failed_with_a_readable_error(stack, user):
    # Stop the relay so the file cannot be processed before its content is swapped.
    stack.relay.stop()
    try:
        file_id = uploaded(stack, user, b"what was uploaded\n", filename="tampered.txt")
        key = stack.row(file_id).storage_key
        storage = stack.storage
        if stack.backend == "s3":
            storage.client.put_object(Bucket=storage.bucket, Key=key, Body=b"something else\n")
        else:
            storage._path(key).write_bytes(b"something else\n")
    finally:
        stack.relay.start()
    failed = stack.wait_for_status(file_id, "FAILED", timeout=30)
    assert failed.error.startswith("The stored content does not match the upload")
    body = stack.app.test_client().get(f"/v1/files/{file_id}", headers=user.headers).json
    assert body["status"] == "FAILED" and body["error"] == failed.error


def test_processing_twice_gives_the_same_result(stack, user):
    file_id = uploaded(stack, user, "idempotent ✓ content\n".encode() * 5000, filename="twice.txt")
    first = stack.wait_for_status(file_id, "PROCESSED", timeout=30)
    # A duplicate task (a redelivered event, a reaper race) changes nothing.
    stack.send_task("files.process_file", file_id)
    pause(2)
    assert stack.row(file_id) == first
    with stack.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE files SET status = 'UPLOADED', line_count = NULL, word_count = NULL,"
                " mime_type = NULL, encoding = NULL, extra = '{}', processed_at = NULL"
                " WHERE id = :id"
            ),
            {"id": file_id},
        )
    stack.send_task("files.process_file", file_id)
    again = stack.wait_for_status(file_id, "PROCESSED", timeout=30)
    fields = ("size", "sha256", "mime_type", "encoding", "line_count", "word_count", "extra")
    assert [getattr(again, f) for f in fields] == [getattr(first, f) for f in fields]


def test_an_upload_made_while_the_relay_is_down_is_processed_once_it_is_back(stack, user):
    stack.relay.stop()
    try:
        file_id = uploaded(stack, user, b"waiting for the relay\n", filename="relay-down.txt")
        pause(2)
        assert stack.row(file_id).status == "UPLOADED"
    finally:
        stack.relay.start()
    stack.wait_for_status(file_id, "PROCESSED", timeout=30)


def test_an_upload_survives_the_consumer_being_killed(stack, user):
    stack.consumer.kill()
    try:
        file_id = uploaded(stack, user, b"waiting for the consumer\n", filename="consumer.txt")
        pause(2)
        assert stack.row(file_id).status == "UPLOADED"
    finally:
        stack.consumer.start()
    stack.wait_for_status(file_id, "PROCESSED", timeout=60)


def test_a_worker_killed_mid_file_is_replaced_and_the_file_ends_processed(stack, user, tmp_path):
    # `slow-` files crawl through the test's slow processor: 64 chunks take several seconds.
    path = write_generated(tmp_path / "slow.txt", 64 * MB, seed=5)
    file_id = uploaded(stack, user, path.read_bytes(), filename="slow-large.txt")
    stack.wait_for_status(file_id, "PROCESSING", timeout=30)
    pause(1)
    stack.worker.kill()
    assert stack.row(file_id).status == "PROCESSING"
    stack.start_worker()
    done = stack.wait_for_status(file_id, "PROCESSED", timeout=90)
    assert (done.line_count, done.word_count) == wc_counts(path=path)
    assert done.attempts >= 2


def test_a_worker_stopped_mid_file_finishes_it_then_exits(stack, user, tmp_path):
    # SIGTERM to the main process, as `docker stop` and supervisord send it: Celery's warm
    # shutdown stops taking jobs and lets the running one end (and be acked) first.
    path = write_generated(tmp_path / "slow.txt", 64 * MB, seed=6)
    file_id = uploaded(stack, user, path.read_bytes(), filename="slow-drained.txt")
    stack.wait_for_status(file_id, "PROCESSING", timeout=30)
    pause(1)
    os.kill(stack.worker.process.pid, signal.SIGTERM)
    try:
        assert stack.worker.process.wait(timeout=120) == 0, stack.worker.logs()[-2000:]
        done = stack.row(file_id)
        assert done.status == "PROCESSED"
        assert done.attempts == 1
        assert (done.line_count, done.word_count) == wc_counts(path=path)
    finally:
        stack.start_worker()


def test_the_reaper_requeues_a_file_whose_claim_lapsed_without_a_task(stack, user):
    stack.relay.stop()
    try:
        file_id = uploaded(stack, user, b"orphaned claim\n", filename="orphan.txt")
    finally:
        # Its FileUploaded event is dropped: only the reaper can still start this file.
        with stack.engine.begin() as conn:
            conn.execute(text("DELETE FROM outbox WHERE aggregate_id = :id"), {"id": file_id})
            conn.execute(
                text(
                    "UPDATE files SET status = 'PROCESSING', processing_token = gen_random_uuid(),"
                    " attempts = 1, lease_expires_at = now() + make_interval(secs => 1)"
                    " WHERE id = :id"
                ),
                {"id": file_id},
            )
        stack.relay.start()
    done = stack.wait_for_status(file_id, "PROCESSED", timeout=30)
    assert done.attempts == 2


def test_storage_outage_is_retried_with_backoff_until_it_ends(stack, user, fresh_logs):
    # The outage is a moved-away directory (local) or a refused connection to S3 (s3).
    stack.relay.stop()
    try:
        file_id = uploaded(stack, user, b"retry me\n", filename="outage.txt")
        with stack.switch.down():
            # Restarted, they build their apps during the outage: the consumer on the first
            # FileUploaded it handles, the worker at start. Neither may recreate the directory.
            for process in (stack.consumer, stack.worker):
                process.stop()
            stack.consumer.start()
            stack.start_worker()
            stack.relay.start()
            stack.worker.wait_for_log("storage unreachable", timeout=30, since=fresh_logs["worker"])
            pause(LEASE_SECONDS / 2)
            assert stack.row(file_id).status in ("UPLOADED", "PROCESSING")
            if stack.backend == "local":
                root = Path(stack.storage_settings["STORAGE_DIR"])
                assert not root.exists(), "a restarted process recreated the storage directory"
    finally:
        if not stack.relay.running:
            stack.relay.start()
        if not stack.consumer.running:
            stack.consumer.start()
        if not stack.worker.running:
            stack.start_worker()
    done = stack.wait_for_status(file_id, "PROCESSED", timeout=60)
    assert (done.line_count, done.word_count) == (1, 2)
    retries = [
        r
        for r in stack.worker.log_records_since(fresh_logs["worker"])
        if "Retry in" in r["message"] and "storage unreachable" in r["message"]
    ]
    assert retries, "the task was not retried"
