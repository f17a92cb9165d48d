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

HANDLER_RUN = """
import json, sys
from shared.events import Envelope
from services.files import handlers
payload = json.loads(sys.argv[1])
envelope = Envelope(id="e1", type="FileProcessed", version=1, source="files",
    occurred_at="2026-01-01T00:00:00Z", aggregate_type="file",
    aggregate_id=payload["file_id"], sequence=1, correlation_id=None, payload=payload)
handlers.on_processing_finished(envelope, None)
print(",".join(m for m in ("services.files.worker", "services.files.app") if m in sys.modules))
"""


def test_a_finished_file_queues_its_notification_by_name_without_loading_the_worker(test_env):
    # A namespace of this test's own (under the run's, so it is cleaned up): no worker consumes it.
    namespace = f"{test_env.namespace}-handlers-{uuid.uuid4().hex[:8]}"
    payload = {
        "owner_id": str(uuid.uuid4()),
        "file_id": str(uuid.uuid4()),
        "filename": "notes.txt",
        "status": "PROCESSED",
    }
    env = {**test_env.env(), "DOCKYARD_NAMESPACE": namespace, "PATH": "/usr/bin:/bin"}
    ran = subprocess.run(
        [sys.executable, "-c", HANDLER_RUN, json.dumps(payload)],
        env={**env, "PYTHONPATH": ":".join(sys.path)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert ran.stdout.strip() == "", "the handler loaded the worker or built the app"

    queue = jobs.files_queues(FilesSettings(NAMESPACE=namespace)).notifications
    with Connection(test_env.amqp_url) as connection:
        message = connection.default_channel.basic_get(queue.name, no_ack=True)
    assert message is not None, "nothing in the notifications queue"
    assert message.headers["task"] == jobs.NOTIFY_FILE_STATUS
    args = json.loads(message.body)[0]
    assert args == [payload["owner_id"], payload["file_id"], "notes.txt", "PROCESSED"]
