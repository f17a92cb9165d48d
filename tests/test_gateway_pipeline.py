"""End to end: an apollo-upload-client upload, processed by the real pipeline, seen live.

Gateway (uvicorn), files service, its relay, its consumer (`dockyard consume files`) and a
Celery worker all run for real; the subscription must see PROCESSED and the query the results.
The module runs once per storage backend (local directory, then S3 on moto's server).
"""

from __future__ import annotations

import asyncio
import json
import os
import time

import amqp
import pytest
from sqlalchemy import text

from shared.messaging.broker import close_quietly, connect
from tests.conftest import BIN, FilesBackend, background
from tests.gateway_clients import FILE_UPDATED, GET_FILE, Gateway, Socket, session, upload

CONSUMER_QUEUE = "consumer.files.processing"


def _queue_exists(amqp_url: str, queue: str) -> bool:
    connection = connect(amqp_url, name="test-probe")
    try:
        connection.channel().queue_declare(queue, passive=True)
        return True
    except amqp.exceptions.NotFound:
        return False
    finally:
        close_quietly(connection)


@pytest.fixture(scope="module")
def pipeline(test_env, relays, files_backend: FilesBackend):
    """The files consumer and a Celery worker on the storage of this module run's backend."""
    env = {**os.environ, **files_backend.storage_env(), "LOG_LEVEL": "WARNING"}
    worker = [
        str(BIN / "celery"), "-A", "services.files.worker:celery_app", "worker",
        "--concurrency", "1", "--without-gossip", "--without-mingle", "--hostname", "gw-e2e@%h",
    ]  # fmt: skip
    with (
        background("the files consumer", [str(BIN / "dockyard"), "consume", "files"], env),
        background("the files worker", worker, env),
    ):
        # The consumer's queue must exist before an upload, or its FileUploaded goes unroutable.
        deadline = time.monotonic() + 30
        while not _queue_exists(test_env.amqp_url, f"{test_env.namespace}.{CONSUMER_QUEUE}"):
            assert time.monotonic() < deadline, "the files consumer never declared its queue"
            time.sleep(0.2)
        yield


@pytest.fixture(scope="module")
def gateway(files_gateway, pipeline) -> Gateway:
    """A served gateway in front of the files service, with the whole pipeline behind it."""
    return Gateway(files_gateway)


def test_an_upload_is_processed_and_the_subscription_sees_it_then_the_query_shows_results(
    gateway, files_gateway, files_backend
):
    user = gateway.sign_up()
    content = b"one two\nthree\n"
    file_id = upload(gateway, user, content, filename="words.txt")["id"]

    async def scenario(socket: Socket) -> list[dict]:
        await socket.subscribe("e2e", FILE_UPDATED, {"id": file_id})
        states = []
        while True:
            message = json.loads(await asyncio.wait_for(socket.ws.recv(), 60))
            if message["type"] == "complete":
                return states
            assert message["type"] == "next", message
            states.append(message["payload"]["data"]["fileUpdated"])

    states = session(files_gateway, user, scenario)
    statuses = [state["status"] for state in states]
    # Processing may be quicker than the subscription: it starts wherever the file is.
    assert statuses[-1] == "PROCESSED"
    assert statuses == [s for s in ("UPLOADED", "PROCESSING", "PROCESSED") if s in statuses]
    final = states[-1]
    assert (final["lineCount"], final["wordCount"], final["mimeType"]) == (2, 3, "text/plain")

    details = gateway(GET_FILE, {"id": file_id}, token=user.token)["data"]["file"]
    assert details["status"] == "PROCESSED"
    assert (details["lineCount"], details["wordCount"]) == (2, 3)
    assert details["processedAt"] is not None
    # The upload landed in the backend under test, so that is where the worker read it.
    with files_backend.app.extensions["files"].engine.connect() as conn:
        key = conn.execute(
            text("SELECT storage_key FROM files WHERE id = :id"), {"id": file_id}
        ).scalar_one()
    assert files_backend.content(key) == content


SEARCH = "query ($search: String) { files(search: $search) { edges { node { id status } } } }"


def test_a_processed_text_file_is_found_by_its_content_words_once_the_worker_indexed_it(gateway):
    user = gateway.sign_up()
    content = b"the lighthouse keeper's logbook\n"
    file_id = upload(gateway, user, content, filename="notes.txt")["id"]
    deadline = time.monotonic() + 60
    while True:
        body = gateway(SEARCH, {"search": "lighthouse"}, token=user.token)
        assert "errors" not in body, body
        nodes = [edge["node"] for edge in body["data"]["files"]["edges"]]
        if nodes:
            break
        assert time.monotonic() < deadline, "the file was never found by its content's words"
        time.sleep(0.2)
    # Indexing follows processing: a file found by its content's words was processed first.
    assert nodes == [{"id": file_id, "status": "PROCESSED"}]
