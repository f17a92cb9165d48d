"""The tasks service's /metrics counts tasks by status, as the database holds them."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from services.tasks.app import create_app
from services.tasks.metrics import TaskStatusCollector
from services.tasks.models import Task, TaskStatus


def test_metrics_report_every_status_with_the_databases_count(test_env):
    app = create_app()
    body = app.test_client().get("/metrics").get_data(as_text=True)
    (family,) = [f for f in text_string_to_metric_families(body) if f.name == "dockyard_tasks"]
    reported = {sample.labels["status"]: sample.value for sample in family.samples}
    collector = next(
        c
        for c in app.extensions["metrics_registry"]._collector_to_names
        if isinstance(c, TaskStatusCollector)
    )
    with collector.engine.connect() as conn:
        stored = dict(conn.execute(select(Task.status, func.count()).group_by(Task.status)).all())
    assert set(reported) == {status.value for status in TaskStatus}
    assert reported == {status.value: float(stored.get(status, 0)) for status in TaskStatus}


def test_a_database_that_does_not_answer_leaves_the_gauge_out(test_env):
    from sqlalchemy import create_engine

    unreachable = create_engine("postgresql+psycopg2://nobody:x@127.0.0.1:1/none")
    assert list(TaskStatusCollector(unreachable).collect()) == []
