"""The tasks service's /metrics reports the last minute's container starts per second."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, func, text
from sqlalchemy.orm import Session

from services.tasks.app import create_app
from services.tasks.config import TasksSettings
from services.tasks.metrics import RECENT_STARTS, ContainerStartRateCollector
from services.tasks.models import SCHEMA
from services.tasks.tests.factories import task_row
from shared.db import make_engine
from shared.testing import own_service_database


@pytest.fixture(scope="module")
def own_database(test_env):
    """A tasks database of this module's own: the run's shared one sees other tests' starts."""
    with own_service_database(test_env, SCHEMA, "starts") as url:
        yield url


@pytest.fixture
def engine(own_database):
    """An engine on the module's database, emptied of tasks for each test."""
    engine = make_engine(own_database, schema=SCHEMA)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM tasks"))
    yield engine
    engine.dispose()


def add_task(engine, *, started_ago: timedelta | None) -> None:
    """A task whose latest attempt started `started_ago` before the database's now (or never)."""
    with Session(engine) as session:
        started_at = None if started_ago is None else func.now() - started_ago
        session.add(task_row(uuid.uuid4(), started_at=started_at))
        session.commit()


def start_rate(collector: ContainerStartRateCollector) -> float:
    """The one sample of the collector's gauge."""
    (family,) = collector.collect()
    (sample,) = family.samples
    assert sample.name == "dockyard_container_starts_per_second"
    return sample.value


def test_only_the_last_minutes_starts_count(engine):
    add_task(engine, started_ago=timedelta(0))
    add_task(engine, started_ago=timedelta(hours=1))
    add_task(engine, started_ago=None)
    assert start_rate(ContainerStartRateCollector(engine)) == pytest.approx(1 / 60)


def test_no_recent_start_reports_zero(engine):
    add_task(engine, started_ago=timedelta(seconds=90))
    assert start_rate(ContainerStartRateCollector(engine)) == 0


def test_the_tasks_metrics_serve_the_start_rate(engine, own_database):
    for _ in range(3):
        add_task(engine, started_ago=timedelta(seconds=5))
    app = create_app(TasksSettings(DATABASE_URL=own_database))
    body = app.test_client().get("/metrics").get_data(as_text=True)
    (family,) = [
        f
        for f in text_string_to_metric_families(body)
        if f.name == "dockyard_container_starts_per_second"
    ]
    assert [sample.value for sample in family.samples] == [pytest.approx(3 / 60)]
    assert "retry" in family.documentation


def test_the_start_count_reads_the_started_at_index(engine):
    with engine.connect() as conn:
        # The table is tiny: without this the planner rightly prefers a sequential scan.
        conn.execute(text("SET enable_seqscan = off"))
        compiled = RECENT_STARTS.compile(engine, compile_kwargs={"literal_binds": True})
        plan = "\n".join(conn.execute(text(f"EXPLAIN {compiled}")).scalars())
    assert "ix_tasks_started_at" in plan, plan


def test_a_database_that_does_not_answer_leaves_the_rate_out(caplog):
    unreachable = create_engine("postgresql+psycopg2://nobody:x@127.0.0.1:1/none")
    with caplog.at_level(logging.WARNING, logger="services.tasks.metrics"):
        assert list(ContainerStartRateCollector(unreachable).collect()) == []
    assert "could not count container starts" in caplog.text
