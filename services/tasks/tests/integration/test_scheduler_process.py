"""`python -m services.tasks.scheduler` as real processes: racing, and SIGKILLed mid-fire."""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from services.tasks.tests.schedule_support import (
    create,
    fires,
    policy,
    runs,
    schedule_database,
)
from shared.processes import ManagedProcess

REPO = Path(__file__).resolve().parents[4]
#: The key create_task's per-owner advisory lock uses (service._ACTIVE_COUNT_LOCK, "tasq").
ACTIVE_COUNT_LOCK = 0x74617371


@pytest.fixture(scope="module")
def schedule_db():
    """A tasks database of this module's own."""
    with schedule_database() as db:
        yield db


def scheduler(db, test_env, name: str) -> ManagedProcess:
    """A scheduler process on the module's database (not started)."""
    env = {
        **os.environ,
        **test_env.env(),
        "TASKS_DATABASE_URL": db.url,
        # Whatever the machine's load, a fire time reached late is still run, not a misfire.
        "TASKS_SCHEDULE_MISFIRE_GRACE_SECONDS": "600",
        "PYTHONUNBUFFERED": "1",
    }
    argv = [sys.executable, "-m", "services.tasks.scheduler"]
    return ManagedProcess(name, argv, env=env, cwd=REPO)


@contextmanager
def running(processes: list[ManagedProcess]) -> Iterator[list[ManagedProcess]]:
    """Start the processes and wait until each says it started; stop them after the block."""
    with ExitStack() as stack:
        for process in processes:
            stack.callback(process.stop)
            process.start()
        for process in processes:
            process.wait_ready(log_line="scheduler started", timeout=60)
        yield processes


def wait_for(predicate: Callable[[], object], *, timeout: float, message: str) -> object:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s: {message}")
        time.sleep(0.1)
    return value


def test_three_scheduler_processes_start_one_run_per_fire_time(schedule_db, test_env):
    every_second = policy(min_interval_seconds=1)
    now = datetime.now(UTC)
    created = [
        create(schedule_db, now=now, interval_seconds=1, schedule_policy=every_second)
        for _ in range(2)
    ]
    processes = [scheduler(schedule_db, test_env, f"scheduler-{n}") for n in range(3)]
    with running(processes):
        for schedule in created:
            wait_for(
                lambda schedule=schedule: len(fires(schedule_db, schedule.id)) >= 6,
                timeout=60,
                message="the schedulers did not fire six times",
            )
    for schedule in created:
        recorded = fires(schedule_db, schedule.id)
        first = recorded[0].fire_time
        # Every fire time from the first on, once each, none missing.
        assert [f.fire_time for f in recorded] == [
            first + timedelta(seconds=k) for k in range(len(recorded))
        ]
        assert first == now + timedelta(seconds=1)
        assert {f.outcome for f in recorded} == {"STARTED"}
        started = runs(schedule_db, schedule.id)
        assert sorted(r.id for r in started) == sorted(f.task_id for f in recorded)
    fired_by = [p.name for p in processes if "fired" in p.logs()]
    assert fired_by, "no scheduler logged a fire"


def _waiting_advisory_locks(url: str) -> int:
    engine = create_engine(url.replace("dockyard_tasks@", "postgres@"))
    try:
        with engine.connect() as connection:
            return connection.scalar(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                    " AND database = (SELECT oid FROM pg_database"
                    " WHERE datname = current_database())"
                )
            )
    finally:
        engine.dispose()


def test_a_scheduler_killed_mid_fire_leaves_no_double_and_no_missed_fire(schedule_db, test_env):
    owner = uuid.uuid4()
    now = datetime.now(UTC)
    # Hourly, first due a second from now.
    schedule = create(
        schedule_db, now=now - timedelta(seconds=3599), interval_seconds=3600, owner_id=owner
    )
    fire_time = now + timedelta(seconds=1)
    blocker = create_engine(schedule_db.url).connect()
    try:
        # The fire's create_task waits on this lock, inside the fire's transaction: the fire row
        # is written, the schedule row locked, nothing committed.
        blocker.execute(
            text("SELECT pg_advisory_lock(:space, hashtext(:owner))"),
            {"space": ACTIVE_COUNT_LOCK, "owner": str(owner)},
        )
        first = scheduler(schedule_db, test_env, "scheduler-killed")
        with running([first]):
            wait_for(
                lambda: _waiting_advisory_locks(schedule_db.url) == 1,
                timeout=30,
                message="the scheduler never reached the middle of its fire",
            )
            first.kill()
        assert fires(schedule_db, schedule.id) == []
        second = scheduler(schedule_db, test_env, "scheduler-restarted")
        with running([second]):
            # The killed one's session still holds the schedule's row: nothing fires yet.
            time.sleep(1)
            assert fires(schedule_db, schedule.id) == []
            blocker.execute(
                text("SELECT pg_advisory_unlock(:space, hashtext(:owner))"),
                {"space": ACTIVE_COUNT_LOCK, "owner": str(owner)},
            )
            wait_for(
                lambda: fires(schedule_db, schedule.id),
                timeout=30,
                message="the restarted scheduler did not fire the fire time",
            )
            time.sleep(1)
    finally:
        blocker.close()
    (recorded,) = fires(schedule_db, schedule.id)
    assert (recorded.fire_time, recorded.outcome) == (fire_time, "STARTED")
    (run,) = runs(schedule_db, schedule.id)
    assert run.id == recorded.task_id and run.status == "PENDING"
