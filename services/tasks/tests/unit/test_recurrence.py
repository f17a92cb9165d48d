"""Fire times: cron in a timezone (DST as cron users expect), intervals, and what is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.tasks.recurrence import InvalidRecurrence, Recurrence, shortest_gap

BERLIN = ZoneInfo("Europe/Berlin")


def _berlin(cron: str) -> Recurrence:
    return Recurrence("Europe/Berlin", cron=cron)


def _iso(times: list[datetime]) -> list[str]:
    return [moment.isoformat() for moment in times]


def test_a_fixed_time_in_the_spring_gap_fires_right_after_it():
    # 29 March 2026: 02:00 CET jumps to 03:00 CEST, so 02:30 does not exist that day.
    times = _berlin("30 2 * * *").upcoming(datetime(2026, 3, 27, 12, tzinfo=BERLIN), 4)
    assert _iso(times) == [
        "2026-03-28T02:30:00+01:00",
        "2026-03-29T03:00:00+02:00",
        "2026-03-30T02:30:00+02:00",
        "2026-03-31T02:30:00+02:00",
    ]


def test_an_hourly_schedule_has_no_fire_in_the_missing_hour():
    times = _berlin("0 * * * *").upcoming(datetime(2026, 3, 29, 0, 30, tzinfo=BERLIN), 3)
    assert _iso(times) == [
        "2026-03-29T01:00:00+01:00",
        "2026-03-29T03:00:00+02:00",
        "2026-03-29T04:00:00+02:00",
    ]


def test_a_fixed_time_in_the_repeated_autumn_hour_fires_once():
    # 25 October 2026: 03:00 CEST falls back to 02:00 CET, so 02:30 happens twice.
    times = _berlin("30 2 * * *").upcoming(datetime(2026, 10, 23, 12, tzinfo=BERLIN), 4)
    assert _iso(times) == [
        "2026-10-24T02:30:00+02:00",
        "2026-10-25T02:30:00+02:00",
        "2026-10-26T02:30:00+01:00",
        "2026-10-27T02:30:00+01:00",
    ]


def test_an_hourly_schedule_fires_in_both_occurrences_of_the_repeated_hour():
    times = _berlin("0 * * * *").upcoming(datetime(2026, 10, 25, 0, 30, tzinfo=BERLIN), 4)
    assert _iso(times) == [
        "2026-10-25T01:00:00+02:00",
        "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:00:00+01:00",
        "2026-10-25T03:00:00+01:00",
    ]
    # Every hour of real time, no more and no less.
    real = [moment.astimezone(UTC) for moment in times]
    assert {b - a for a, b in zip(real, real[1:], strict=False)} == {timedelta(hours=1)}


def test_starting_inside_the_repeated_hour_does_not_fire_it_again():
    after_first = datetime(2026, 10, 25, 2, 30, tzinfo=BERLIN)  # fold=0: CEST, already fired
    assert _berlin("30 2 * * *").next_after(after_first).isoformat() == "2026-10-26T02:30:00+01:00"


def test_fire_times_carry_the_timezones_offset():
    times = Recurrence("America/New_York", cron="0 9 * * 1").upcoming(
        datetime(2026, 1, 1, tzinfo=UTC), 1
    )
    assert _iso(times) == ["2026-01-05T09:00:00-05:00"]


def test_an_interval_counts_real_seconds_from_its_anchor_whatever_the_timezone():
    anchor = datetime(2026, 10, 24, 23, 0, 10, tzinfo=UTC)
    every_hour = Recurrence("Europe/Berlin", interval_seconds=3600, anchor=anchor)
    times = every_hour.upcoming(anchor, 3)
    assert [t.astimezone(UTC) for t in times] == [anchor + timedelta(hours=h) for h in (1, 2, 3)]
    assert _iso(times) == [
        "2026-10-25T02:00:10+02:00",
        "2026-10-25T02:00:10+01:00",
        "2026-10-25T03:00:10+01:00",
    ]
    # Strictly after: a fire time itself is not its own successor.
    assert every_hour.next_after(times[0]) == times[1]


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("* * * *", "Must have 5 fields"),
        ("0 0 * * * *", "Must have 5 fields"),
        ("61 * * * *", "not a valid cron expression"),
        ("* 24 * * *", "not a valid cron expression"),
        ("@daily", "Must have 5 fields"),
        ("a b c d e", "not a valid cron expression"),
    ],
)
def test_an_invalid_cron_expression_is_refused_naming_the_field(cron, message):
    with pytest.raises(InvalidRecurrence) as refused:
        Recurrence("UTC", cron=cron)
    assert refused.value.field == "cron"
    assert message in refused.value.message


@pytest.mark.parametrize("timezone", ["Mars/Olympus", "", "../etc/passwd", "/etc/localtime"])
def test_an_unknown_timezone_is_refused_naming_the_field(timezone):
    with pytest.raises(InvalidRecurrence) as refused:
        Recurrence(timezone, cron="* * * * *")
    assert refused.value.field == "timezone"


def test_exactly_one_of_cron_and_interval():
    for kwargs in ({}, {"cron": "* * * * *", "interval_seconds": 60}):
        with pytest.raises(InvalidRecurrence):
            Recurrence("UTC", anchor=datetime.now(UTC), **kwargs)


def test_an_expression_that_never_fires_has_no_next_fire_time():
    never = Recurrence("UTC", cron="0 0 30 2 *")
    assert never.next_after(datetime(2026, 1, 1, tzinfo=UTC)) is None
    assert never.upcoming(datetime(2026, 1, 1, tzinfo=UTC), 5) == []


def test_the_shortest_gap_of_an_irregular_expression():
    irregular = Recurrence("UTC", cron="0,1 * * * *")
    assert shortest_gap(irregular, datetime(2026, 1, 1, tzinfo=UTC), sample=10) == timedelta(
        minutes=1
    )
