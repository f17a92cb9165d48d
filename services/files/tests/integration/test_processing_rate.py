"""The files service's /metrics reports the last minute's processed bytes per second."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, func, text
from sqlalchemy.orm import Session

from services.files.app import create_app
from services.files.config import FilesSettings
from services.files.metrics import RECENT_BYTES, FileProcessingRateCollector
from services.files.models import SCHEMA, File, FileStatus
from shared.db import make_engine
from shared.testing import own_service_database


@pytest.fixture(scope="module")
def own_database(test_env):
    """A files database of this module's own: the run's shared one sees other tests' files."""
    with own_service_database(test_env, SCHEMA, "processing_rate") as url:
        yield url


@pytest.fixture
def engine(own_database):
    """An engine on the module's database, emptied of files for each test."""
    engine = make_engine(own_database, schema=SCHEMA)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM files"))
    yield engine
    engine.dispose()


def add_file(
    engine, *, size: int, processed_ago: timedelta | None, status: FileStatus = FileStatus.PROCESSED
) -> None:
    """A file of `size` bytes whose processing ended `processed_ago` before the database's now."""
    with Session(engine) as session:
        session.add(
            File(
                owner_id=uuid.uuid4(),
                filename="data.bin",
                original_filename="data.bin",
                content_type="application/octet-stream",
                size=size,
                storage_key=uuid.uuid4().hex,
                sha256="0" * 64,
                status=(FileStatus.UPLOADED if processed_ago is None else status).value,
                processed_at=None if processed_ago is None else func.now() - processed_ago,
            )
        )
        session.commit()


def rates(collector: FileProcessingRateCollector) -> dict[str, float]:
    """The collector's gauge, by status."""
    (family,) = collector.collect()
    assert family.name == "dockyard_file_processing_bytes_per_second"
    return {sample.labels["status"]: sample.value for sample in family.samples}


def test_only_the_last_minutes_files_count_by_outcome(engine):
    add_file(engine, size=6_000_000, processed_ago=timedelta(0))
    add_file(engine, size=3_000_000, processed_ago=timedelta(seconds=30))
    add_file(engine, size=600, processed_ago=timedelta(0), status=FileStatus.FAILED)
    add_file(engine, size=7_000_000, processed_ago=timedelta(hours=1))
    add_file(engine, size=5_000_000, processed_ago=None)
    assert rates(FileProcessingRateCollector(engine)) == {
        "PROCESSED": pytest.approx(9_000_000 / 60),
        "FAILED": pytest.approx(600 / 60),
    }


def test_no_recent_file_reports_zero_for_each_outcome(engine):
    add_file(engine, size=1_000, processed_ago=timedelta(seconds=90))
    assert rates(FileProcessingRateCollector(engine)) == {"PROCESSED": 0, "FAILED": 0}


def test_the_files_metrics_serve_the_processing_rate(engine, own_database, tmp_path):
    add_file(engine, size=120_000, processed_ago=timedelta(seconds=5))
    settings = FilesSettings(
        DATABASE_URL=own_database, STORAGE_BACKEND="local", STORAGE_DIR=str(tmp_path)
    )
    body = create_app(settings).test_client().get("/metrics").get_data(as_text=True)
    (family,) = [
        f
        for f in text_string_to_metric_families(body)
        if f.name == "dockyard_file_processing_bytes_per_second"
    ]
    reported = {sample.labels["status"]: sample.value for sample in family.samples}
    assert reported == {"PROCESSED": pytest.approx(2_000), "FAILED": 0}


def test_the_byte_sum_reads_the_processed_at_index(engine):
    with engine.connect() as conn:
        # The table is tiny: without this the planner rightly prefers a sequential scan.
        conn.execute(text("SET enable_seqscan = off"))
        compiled = RECENT_BYTES.compile(engine, compile_kwargs={"literal_binds": True})
        plan = "\n".join(conn.execute(text(f"EXPLAIN {compiled}")).scalars())
    assert "ix_files_processed_at" in plan, plan


def test_a_database_that_does_not_answer_leaves_the_rate_out(caplog):
    unreachable = create_engine("postgresql+psycopg2://nobody:x@127.0.0.1:1/none")
    with caplog.at_level(logging.WARNING, logger="services.files.metrics"):
        assert list(FileProcessingRateCollector(unreachable).collect()) == []
    assert "could not sum processed files" in caplog.text
