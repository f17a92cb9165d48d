"""Search indexing after processing, end to end: relay, consumer and a real Celery worker.

Processing records a text file PROCESSED without its search document; the consumer answers
FileProcessed with `files.index_file_text`, and the worker writes the document. The module runs
once per storage backend (the job reads the text's head from storage again).
"""

from __future__ import annotations

import uuid

from sqlalchemy import text

from services.files import processing
from services.files.tests.conftest import upload
from services.files.tests.integration.conftest import pause
from services.files.tests.processes import wait_until


def uploaded(stack, user, content: bytes, filename: str) -> str:
    response = upload(stack.app.test_client(), user, content, filename=filename)
    assert response.status_code == 201, response.json
    return response.json["id"]


def documents(stack, file_id: str) -> list:
    """The file's search document rows (one at most)."""
    with stack.engine.connect() as conn:
        return conn.execute(
            text("SELECT * FROM file_search_documents WHERE file_id = :id"), {"id": file_id}
        ).all()


def wait_for_document(stack, file_id: str, timeout: float = 30):
    """Poll until the file's search document exists; return its row."""
    return wait_until(
        lambda: next(iter(documents(stack, file_id)), None),
        timeout=timeout,
        what=f"the search document of file {file_id}",
    )


def found(stack, user, words: str) -> list[str]:
    """The ids GET /v1/files?search=words answers, best match first."""
    response = stack.app.test_client().get(
        "/v1/files", query_string={"search": words}, headers=user.headers
    )
    assert response.status_code == 200, response.json
    return [edge["node"]["id"] for edge in response.json["edges"]]


def indexing_runs(stack, file_id: str, since: int) -> int:
    """How many indexing jobs for the file the worker finished (indexed) after offset `since`."""
    return stack.worker.logs()[since:].count(f"file {file_id} search document: indexed")


def test_a_processed_text_file_is_found_by_its_words_once_the_indexing_job_ran(
    stack, user, fresh_logs
):
    file_id = uploaded(stack, user, b"the narwhal surfaced twice\n", "sighting.txt")
    stack.wait_for_status(file_id, "PROCESSED", timeout=30)
    document = wait_for_document(stack, file_id)
    assert "'narwhal'" in document.content_vector
    assert found(stack, user, "narwhal") == [file_id]
    assert found(stack, user, "sighting") == [file_id]
    wait_until(
        lambda: indexing_runs(stack, file_id, fresh_logs["worker"]) == 1,
        timeout=30,
        what="the worker's log of the indexing job",
    )


def test_binary_content_gets_no_indexing_job(stack, user, fresh_logs):
    file_id = uploaded(stack, user, b"\x00\x01\xffwalrus\x00" * 100, "blob.bin")
    done = stack.wait_for_status(file_id, "PROCESSED", timeout=30)
    assert done.encoding is None
    pause(2)
    assert documents(stack, file_id) == []
    worker_log = stack.worker.logs()[fresh_logs["worker"] :]
    assert f"file {file_id} search document" not in worker_log
    assert found(stack, user, "walrus") == []
    assert found(stack, user, "blob") == [file_id]


def test_a_duplicate_indexing_job_rewrites_the_one_document(stack, user, fresh_logs):
    file_id = uploaded(stack, user, b"albatross over the swell\n", "seabirds.txt")
    first = wait_for_document(stack, file_id)
    # A redelivered FileProcessed (a consumer crash before its inbox commit) sends the job again.
    stack.send_task("files.index_file_text", file_id)
    stack.send_task("files.index_file_text", file_id)
    wait_until(
        lambda: indexing_runs(stack, file_id, fresh_logs["worker"]) == 3,
        timeout=30,
        what="three indexing jobs to finish",
    )
    (again,) = documents(stack, file_id)
    assert again.content_vector == first.content_vector
    assert again.indexed_at > first.indexed_at
    assert found(stack, user, "albatross") == [file_id]


def test_a_worker_killed_mid_indexing_is_replaced_and_the_file_indexed_once(
    stack, user, fresh_logs
):
    # Hold the events back, so the file is PROCESSED (here) and row-locked before its job runs.
    stack.relay.stop()
    try:
        file_id = uploaded(stack, user, b"a lone cormorant dried its wings\n", "shore.txt")
        files = stack.app.extensions["files"]
        outcome = processing.process_file(
            files.uow(), storage=files.storage, file_id=uuid.UUID(file_id), policy=files.processing
        )
        assert outcome is processing.ProcessingOutcome.PROCESSED
        lock = stack.engine.connect()
        # The job's write checks its foreign key with a share lock, which this lock blocks.
        lock.execute(text("SELECT id FROM files WHERE id = :id FOR UPDATE"), {"id": file_id})
    finally:
        stack.relay.start()
    try:

        def job_blocked() -> bool:
            with stack.engine.connect() as conn:
                return bool(
                    conn.scalar(
                        text(
                            "SELECT count(*) FROM pg_stat_activity WHERE datname ="
                            " current_database() AND wait_event_type = 'Lock'"
                            " AND query LIKE '%file_search_documents%'"
                        )
                    )
                )

        wait_until(job_blocked, timeout=30, what="the indexing job to wait on the file's lock")
        stack.worker.kill()
    finally:
        lock.rollback()
        lock.close()
    pause(1)
    assert documents(stack, file_id) == []
    stack.start_worker()
    document = wait_for_document(stack, file_id, timeout=60)
    assert "'cormorant'" in document.content_vector
    assert len(documents(stack, file_id)) == 1
    assert found(stack, user, "cormorant") == [file_id]
    assert indexing_runs(stack, file_id, fresh_logs["worker"]) == 1
