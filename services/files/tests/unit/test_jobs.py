"""Files jobs go to the queues the files worker consumes (no broker needed to check)."""

from __future__ import annotations

from services.files import app, jobs
from services.files.config import FilesSettings


def test_jobs_go_to_the_queues_the_worker_consumes():
    settings = FilesSettings(NAMESPACE="ns")
    queues = jobs.files_queues(settings)
    overrides = app.celery_overrides(settings)
    assert [q.name for q in overrides["task_queues"]] == [
        "ns.files.processing",
        "ns.files.search",
    ]
    assert overrides["task_default_queue"] == queues.processing.name
    assert overrides["task_routes"][jobs.INDEX_FILE_TEXT]["queue"] == queues.search
    assert queues.search.exchange.name == queues.processing.exchange.name
    assert queues.processing.exchange.name == "ns.files"
