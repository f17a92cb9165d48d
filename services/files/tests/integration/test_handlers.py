"""The files handlers send their jobs by name to the files queues, without the worker's app.

A fresh interpreter runs a handler, as the consumer process does, against the real broker; the
job is then read straight from the queue the worker would consume.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

from kombu import Connection

from services.files import jobs
from services.files.config import FilesSettings
from services.files.tests.processes import queue_exists

HANDLER_RUN = """
import json, sys
from shared.events import Envelope
from services.files import handlers
payload = json.loads(sys.argv[1])
envelope = Envelope(id="e1", type="FileProcessed", version=1, source="files",
    occurred_at="2026-01-01T00:00:00Z", aggregate_type="file",
    aggregate_id=payload["file_id"], sequence=1, correlation_id=None, payload=payload)
getattr(handlers, sys.argv[2])(envelope, None)
print(",".join(m for m in ("services.files.worker", "services.files.app") if m in sys.modules))
"""


def run_handler(test_env, handler: str, payload: dict) -> str:
    """Run `handlers.<handler>` on a FileProcessed-like event in a fresh interpreter; namespace.

    The namespace is the test's own (under the run's, so it is cleaned up): no worker consumes it.
    """
    namespace = f"{test_env.namespace}-handlers-{uuid.uuid4().hex[:8]}"
    env = {**test_env.env(), "DOCKYARD_NAMESPACE": namespace, "PATH": "/usr/bin:/bin"}
    ran = subprocess.run(
        [sys.executable, "-c", HANDLER_RUN, json.dumps(payload), handler],
        env={**env, "PYTHONPATH": ":".join(sys.path)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert ran.stdout.strip() == "", "the handler loaded the worker or built the app"
    return namespace


def next_job(test_env, queue):
    """The next message in `queue`, taken off it (None when it is empty)."""
    with Connection(test_env.amqp_url) as connection:
        return connection.default_channel.basic_get(queue.name, no_ack=True)


def test_a_processed_text_file_queues_its_search_indexing_and_a_binary_one_does_not(test_env):
    text_file = {"file_id": str(uuid.uuid4()), "results": {"encoding": "utf-8"}}
    namespace = run_handler(test_env, "on_file_processed", text_file)
    queue = jobs.files_queues(FilesSettings(NAMESPACE=namespace)).search
    message = next_job(test_env, queue)
    assert message is not None, "nothing in the search queue"
    assert message.headers["task"] == jobs.INDEX_FILE_TEXT
    assert json.loads(message.body)[0] == [text_file["file_id"]]

    binary_file = {"file_id": str(uuid.uuid4()), "results": {"encoding": None}}
    namespace = run_handler(test_env, "on_file_processed", binary_file)
    # Sending a job declares its queue: none was sent if the queue does not exist.
    queue = jobs.files_queues(FilesSettings(NAMESPACE=namespace)).search
    assert not queue_exists(test_env.amqp_url, queue.name)
