"""Firing schedules on a controllable clock: misfire and overlap policies, races, DST, once only."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import delete, select, update

from services.tasks import firing, schedules, service
from services.tasks.config import TasksSettings
from services.tasks.lifecycle import transition
from services.tasks.models import Schedule, Task, TaskStatus
from services.tasks.scheduler import Scheduler
from services.tasks.tests.schedule_support import (
    TASK,
    TASK_POLICY,
    Clock,
    create,
    fires,
    policy,
    runs,
    schedule_database,
    schedule_events,
)
from shared.messaging.runtime import Stopper

T0 = datetime(2030, 1, 7, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


@pytest.fixture(scope="module")
def schedule_db():
    """A tasks database of this module's own."""
    with schedule_database() as db:
        yield db


@pytest.fixture(autouse=True)
def only_this_tests_schedules(schedule_db):
    """Each test fires its own schedules only: the module's database is emptied of them after."""
    yield
    with schedule_db.uow() as uow:
        uow.session.execute(delete(Schedule))
        uow.commit()


def fire_all(db, now: datetime, **policy_overrides) -> list[firing.Firing]:
    """Fire everything due at `now`, as one scheduler pass does."""
    return firing.fire_all_due(
        db.uow, now=now, policy=policy(**policy_overrides), task_policy=TASK_POLICY
    )


def event_types(db, schedule_id: str) -> list[str]:
    return [event["type"] for event in schedule_events(db, schedule_id)]


def test_a_schedule_fires_at_each_fire_time_once_and_records_its_run(schedule_db):
    schedule = create(schedule_db, now=T0, interval_seconds=60, name="every minute")
    assert fire_all(schedule_db, T0 + 59 * timedelta(seconds=1)) == []
    fire_all(schedule_db, T0 + MINUTE)
    fire_all(schedule_db, T0 + MINUTE)  # the same instant again: nothing more
    fire_all(schedule_db, T0 + 2 * MINUTE + timedelta(seconds=5))
    recorded = fires(schedule_db, schedule.id)
    assert [f.fire_time for f in recorded] == [T0 + MINUTE, T0 + 2 * MINUTE]
    assert {f.outcome for f in recorded} == {"STARTED"}
    started = runs(schedule_db, schedule.id)
    assert [task.id for task in started] == [f.task_id for f in recorded]
    assert {(task.status, task.name, task.image) for task in started} == {
        (TaskStatus.PENDING, "tick", "busybox:1.36")
    }
    assert event_types(schedule_db, schedule.id) == [
        "ScheduleCreated",
        "ScheduleFired",
        "ScheduleFired",
    ]


def test_a_fired_run_is_created_like_a_create_task_one_with_its_event(schedule_db):
    schedule = create(schedule_db, now=T0, interval_seconds=60)
    fire_all(schedule_db, T0 + MINUTE)
    (run,) = runs(schedule_db, schedule.id)
    with schedule_db.uow() as uow:
        (created,) = uow.session.execute(
            service.text(
                "SELECT payload FROM outbox WHERE aggregate_type = 'task' AND aggregate_id = :id"
                " AND event_type = 'TaskCreated'"
            ),
            {"id": str(run.id)},
        ).scalars()
    assert created["owner_id"] == str(run.owner_id)
    assert (run.timeout_seconds, run.memory_limit_mb) == (900, 512)  # the policy's defaults


def test_the_unique_fire_key_refuses_a_second_run_of_a_handled_fire_time(schedule_db):
    schedule = create(schedule_db, now=T0, interval_seconds=60)
    fire_all(schedule_db, T0 + MINUTE)
    # As if a scheduler whose clock lags set the schedule back to a fire time already handled.
    with schedule_db.uow() as uow:
        uow.session.execute(
            update(Schedule)
            .where(Schedule.id == uuid.UUID(schedule.id))
            .values(next_fire_at=T0 + MINUTE)
        )
        uow.commit()
    fire_all(schedule_db, T0 + MINUTE + timedelta(seconds=1))
    assert len(fires(schedule_db, schedule.id)) == 1
    assert len(runs(schedule_db, schedule.id)) == 1


TEN_MISSED = T0 + 10 * MINUTE + timedelta(seconds=30)


def _ten_missed(db, misfire_policy: str, **policy_overrides):
    """A one-minute schedule whose scheduler comes back 10 periods (and 30 s) late."""
    schedule = create(db, now=T0, interval_seconds=60, misfire_policy=misfire_policy)
    (firing_,) = fire_all(db, TEN_MISSED, misfire_grace_seconds=5, **policy_overrides)
    return schedule, firing_


def _misfired(db, schedule_id: str) -> list[dict]:
    events = schedule_events(db, schedule_id)
    return [event["payload"] for event in events if event["type"] == "ScheduleMisfired"]


def test_skip_runs_none_of_ten_missed_fire_times_and_says_so_once(schedule_db):
    schedule, result = _ten_missed(schedule_db, "SKIP")
    assert (result.started, result.missed) == ([], 10)
    assert runs(schedule_db, schedule.id) == [] and fires(schedule_db, schedule.id) == []
    (misfired,) = _misfired(schedule_db, schedule.id)
    assert misfired["missed"] == 10 and misfired["ran"] == 0
    assert misfired["first_missed_at"] == (T0 + MINUTE).isoformat()
    assert misfired["last_missed_at"] == (T0 + 10 * MINUTE).isoformat()
    # It goes on from the next fire time after now.
    fire_all(schedule_db, T0 + 11 * MINUTE, misfire_grace_seconds=5)
    assert [f.fire_time for f in fires(schedule_db, schedule.id)] == [T0 + 11 * MINUTE]


def test_run_once_runs_the_latest_of_ten_missed_fire_times(schedule_db):
    schedule, result = _ten_missed(schedule_db, "RUN_ONCE")
    assert result.started == [T0 + 10 * MINUTE]
    assert len(runs(schedule_db, schedule.id)) == 1
    (misfired,) = _misfired(schedule_db, schedule.id)
    assert (misfired["missed"], misfired["ran"]) == (9, 1)


def test_run_all_runs_each_of_ten_missed_fire_times_within_the_cap(schedule_db):
    schedule, result = _ten_missed(schedule_db, "RUN_ALL", catch_up_max=10)
    assert result.started == [T0 + k * MINUTE for k in range(1, 11)]
    assert len(runs(schedule_db, schedule.id)) == 10
    assert _misfired(schedule_db, schedule.id) == []


def test_run_all_beyond_the_cap_runs_the_latest_and_reports_the_rest(schedule_db):
    schedule, result = _ten_missed(schedule_db, "RUN_ALL", catch_up_max=4)
    assert result.started == [T0 + k * MINUTE for k in range(7, 11)]
    assert len(runs(schedule_db, schedule.id)) == 4
    (misfired,) = _misfired(schedule_db, schedule.id)
    assert (misfired["missed"], misfired["ran"]) == (6, 4)
    assert misfired["last_missed_at"] == (T0 + 6 * MINUTE).isoformat()


def test_a_fire_time_within_the_grace_is_not_a_misfire(schedule_db):
    schedule = create(schedule_db, now=T0, interval_seconds=60, misfire_policy="SKIP")
    fire_all(schedule_db, T0 + MINUTE + timedelta(seconds=4), misfire_grace_seconds=5)
    assert len(runs(schedule_db, schedule.id)) == 1
    assert _misfired(schedule_db, schedule.id) == []


def _move(db, task_id: uuid.UUID, *statuses: TaskStatus) -> None:
    for status in statuses:
        with db.uow() as uow:
            task = uow.session.get(Task, task_id, with_for_update=True)
            if status is TaskStatus.RUNNING:
                task.attempts += 1
            uow.add_event(transition(task, status, now=datetime.now(UTC)))
            uow.commit()


def _with_previous_run(db, overlap_policy: str, *, running: bool = False):
    schedule = create(db, now=T0, interval_seconds=60, overlap_policy=overlap_policy)
    fire_all(db, T0 + MINUTE)
    (previous,) = runs(db, schedule.id)
    if running:
        _move(db, previous.id, TaskStatus.QUEUED, TaskStatus.RUNNING)
    fire_all(db, T0 + 2 * MINUTE)
    return schedule, previous


def test_overlap_allow_starts_a_run_while_the_previous_still_goes(schedule_db):
    schedule, previous = _with_previous_run(schedule_db, "ALLOW")
    assert [t.status for t in runs(schedule_db, schedule.id)] == ["PENDING", "PENDING"]


def test_overlap_skip_records_the_fire_time_skipped_until_the_previous_run_ends(schedule_db):
    schedule, previous = _with_previous_run(schedule_db, "SKIP", running=True)
    recorded = fires(schedule_db, schedule.id)
    assert [f.outcome for f in recorded] == ["STARTED", "SKIPPED"]
    assert recorded[1].task_id is None and str(previous.id) in recorded[1].detail
    (skipped,) = [
        e["payload"]
        for e in schedule_events(schedule_db, schedule.id)
        if e["type"] == "ScheduleFireSkipped"
    ]
    assert skipped["reason"] == "OVERLAP"
    _move(schedule_db, previous.id, TaskStatus.SUCCEEDED)
    fire_all(schedule_db, T0 + 3 * MINUTE)
    assert [f.outcome for f in fires(schedule_db, schedule.id)] == ["STARTED", "SKIPPED", "STARTED"]
    assert len(runs(schedule_db, schedule.id)) == 2


def test_overlap_cancel_previous_cancels_a_pending_run_at_once(schedule_db):
    schedule, previous = _with_previous_run(schedule_db, "CANCEL_PREVIOUS")
    first, second = runs(schedule_db, schedule.id)
    assert (first.id, first.status, second.status) == (previous.id, "CANCELLED", "PENDING")


def test_overlap_cancel_previous_asks_the_engine_to_stop_a_running_run(schedule_db):
    schedule, previous = _with_previous_run(schedule_db, "CANCEL_PREVIOUS", running=True)
    first, second = runs(schedule_db, schedule.id)
    # Through the owner's cancel path: the monitor kills the container and ends it CANCELLED.
    assert (first.status, second.status) == ("RUNNING", "PENDING")
    assert first.cancel_requested_at is not None


def test_a_run_the_task_policy_refuses_is_recorded_refused(schedule_db):
    owner = uuid.uuid4()
    schedule = create(schedule_db, now=T0, interval_seconds=60, owner_id=owner)
    strict = TASK_POLICY.__class__(**{**TASK_POLICY.__dict__, "max_active_tasks_per_user": 1})
    service.create_task(
        schedule_db.uow(),
        policy=strict,
        owner_id=owner,
        spec=service.TaskSpec(image="busybox", command=["true"]),
    )
    firing.fire_all_due(schedule_db.uow, now=T0 + MINUTE, policy=policy(), task_policy=strict)
    (recorded,) = fires(schedule_db, schedule.id)
    assert recorded.outcome == "REFUSED" and "at most 1 unfinished tasks" in recorded.detail
    assert runs(schedule_db, schedule.id) == []


BERLIN = ZoneInfo("Europe/Berlin")


def _fire_every_quarter_hour(db, start: datetime, end: datetime) -> None:
    # In UTC: adding to a Berlin datetime adds wall-clock time, which skips the repeated hour.
    moment, end = start.astimezone(UTC), end.astimezone(UTC)
    while moment <= end:
        fire_all(db, moment)
        moment += timedelta(minutes=15)


@pytest.mark.parametrize(
    ("cron", "start", "expected"),
    [
        # Spring forward, 29 March 2026: 02:30 does not exist; it fires right after the gap.
        (
            "30 2 * * *",
            datetime(2026, 3, 28, 12, tzinfo=BERLIN),
            ["2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"],
        ),
        # Fall back, 25 October 2026: 02:30 happens twice; a fixed time fires once.
        (
            "30 2 * * *",
            datetime(2026, 10, 24, 12, tzinfo=BERLIN),
            ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"],
        ),
    ],
)
def test_dst_transitions_in_berlin_fire_as_cron_users_expect(schedule_db, cron, start, expected):
    schedule = create(schedule_db, now=start, cron=cron, timezone="Europe/Berlin")
    _fire_every_quarter_hour(schedule_db, start, start + timedelta(days=2))
    fired = [f.fire_time.astimezone(BERLIN).isoformat() for f in fires(schedule_db, schedule.id)]
    assert fired == expected


def test_an_hourly_schedule_runs_every_real_hour_through_the_autumn_night(schedule_db):
    start = datetime(2026, 10, 24, 23, 30, tzinfo=BERLIN)
    schedule = create(schedule_db, now=start, cron="0 * * * *", timezone="Europe/Berlin")
    _fire_every_quarter_hour(schedule_db, start, datetime(2026, 10, 25, 4, 0, tzinfo=BERLIN))
    fired = [f.fire_time.astimezone(BERLIN).isoformat() for f in fires(schedule_db, schedule.id)]
    assert fired == [
        "2026-10-25T00:00:00+02:00",
        "2026-10-25T01:00:00+02:00",
        "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:00:00+01:00",
        "2026-10-25T03:00:00+01:00",
        "2026-10-25T04:00:00+01:00",
    ]


def _race(schedule_db, count: int) -> None:
    """`count` schedulers (separate connections), each woken at every fire time at once."""
    start = datetime(2031, 2, 1, 8, 0, tzinfo=UTC) + timedelta(days=count)
    created = [create(schedule_db, now=start, interval_seconds=60) for _ in range(6)]
    clock = Clock(start)
    settings = TasksSettings(DATABASE_URL=schedule_db.url)
    schedulers = [Scheduler(settings, Stopper(), clock=clock) for _ in range(count)]
    periods = 8
    barrier = threading.Barrier(count + 1)
    errors: list[BaseException] = []

    def run(scheduler: Scheduler) -> None:
        for _ in range(periods):
            barrier.wait()
            try:
                scheduler.tick()
            except BaseException as exc:  # reported by the test below
                errors.append(exc)
            barrier.wait()

    threads = [threading.Thread(target=run, args=(s,)) for s in schedulers]
    for thread in threads:
        thread.start()
    for period in range(1, periods + 1):
        clock.set(start + period * MINUTE)
        barrier.wait()  # every scheduler ticks at once
        barrier.wait()  # every tick is over
    for thread in threads:
        thread.join()
    for scheduler in schedulers:
        scheduler.database.dispose()
    assert errors == []
    for schedule in created:
        recorded = fires(schedule_db, schedule.id)
        assert [f.fire_time for f in recorded] == [start + k * MINUTE for k in range(1, 9)]
        assert {f.outcome for f in recorded} == {"STARTED"}
        started = runs(schedule_db, schedule.id)
        assert sorted(t.id for t in started) == sorted(f.task_id for f in recorded)


def test_two_schedulers_racing_start_exactly_one_run_per_fire_time(schedule_db):
    _race(schedule_db, 2)


def test_three_schedulers_racing_start_exactly_one_run_per_fire_time(schedule_db):
    _race(schedule_db, 3)


def test_a_schedule_that_fails_to_fire_does_not_stop_the_others_and_fires_once_mended(
    schedule_db,
):
    broken = create(schedule_db, now=T0, interval_seconds=60)
    healthy = create(schedule_db, now=T0 + timedelta(seconds=1), interval_seconds=60)
    # A spec create_task no longer takes (say, from an older release): firing it raises.
    with schedule_db.uow() as uow:
        uow.session.execute(
            update(Schedule)
            .where(Schedule.id == uuid.UUID(broken.id))
            .values(task_spec={"image": "busybox", "command": ["true"], "colour": "red"})
        )
        uow.commit()
    clock = Clock(T0 + MINUTE + timedelta(seconds=1))
    scheduler = Scheduler(TasksSettings(DATABASE_URL=schedule_db.url), Stopper(), clock=clock)
    try:
        (failed, fired) = firing.fire_all_due(
            scheduler.uow, now=clock(), policy=policy(), task_policy=TASK_POLICY
        )
        assert (str(failed.schedule_id), failed.failed) == (broken.id, True)
        assert str(fired.schedule_id) == healthy.id and len(fired.started) == 1
        assert fires(schedule_db, broken.id) == []
        # The scheduler holds it back a while rather than trying it on every pass.
        scheduler.tick()
        assert uuid.UUID(broken.id) in scheduler._held_back()
        with schedule_db.uow() as uow:
            uow.session.execute(
                update(Schedule)
                .where(Schedule.id == uuid.UUID(broken.id))
                .values(task_spec={"image": "busybox", "command": ["true"]})
            )
            uow.commit()
        firing.fire_all_due(scheduler.uow, now=clock(), policy=policy(), task_policy=TASK_POLICY)
        assert [f.fire_time for f in fires(schedule_db, broken.id)] == [T0 + MINUTE]
    finally:
        scheduler.database.dispose()


def _workflow_schedule(db, overlap_policy: str):
    """A schedule of a two-step workflow (first → second), fired once at T0 + a minute."""
    steps = [
        {"name": "first", "task": TASK},
        {"name": "second", "task": TASK, "depends_on": ["first"]},
    ]
    schedule = schedules.create_schedule(
        db.uow(),
        policy=policy(),
        task_policy=TASK_POLICY,
        owner_id=uuid.uuid4(),
        workflow={"name": "nightly", "steps": steps},
        interval_seconds=60,
        overlap_policy=overlap_policy,
        now=T0,
    )
    fire_all(db, T0 + MINUTE)
    (first,) = runs(db, schedule.id)
    return schedule, first


def _steps_of(db, workflow_id) -> dict[str, str]:
    with db.uow() as uow:
        tasks = uow.session.scalars(select(Task).where(Task.workflow_id == workflow_id))
        return {t.workflow_step: t.status for t in tasks}


def test_overlap_skip_waits_for_a_scheduled_workflow_to_finish_not_its_first_step(schedule_db):
    schedule, first = _workflow_schedule(schedule_db, "SKIP")
    # The first step ended; the workflow still runs its second step.
    _move(schedule_db, first.id, TaskStatus.QUEUED, TaskStatus.RUNNING, TaskStatus.SUCCEEDED)
    fire_all(schedule_db, T0 + 2 * MINUTE)
    assert [f.outcome for f in fires(schedule_db, schedule.id)] == ["STARTED", "SKIPPED"]


def test_overlap_cancel_previous_cancels_every_step_of_a_scheduled_workflow(schedule_db):
    schedule, first = _workflow_schedule(schedule_db, "CANCEL_PREVIOUS")
    with schedule_db.uow() as uow:
        workflow_id = uow.session.get(Task, first.id).workflow_id
    _move(schedule_db, first.id, TaskStatus.QUEUED, TaskStatus.RUNNING, TaskStatus.SUCCEEDED)
    fire_all(schedule_db, T0 + 2 * MINUTE)
    assert _steps_of(schedule_db, workflow_id) == {"first": "SUCCEEDED", "second": "CANCELLED"}
    assert [f.outcome for f in fires(schedule_db, schedule.id)] == ["STARTED", "STARTED"]
