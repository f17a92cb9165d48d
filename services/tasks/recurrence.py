"""When a schedule fires: 5-field cron in an IANA timezone (croniter), or a fixed interval.

Daylight saving time is handled as cron users expect (ISC/Vixie cron's rules):

- Spring forward (a wall-clock hour that does not exist): a fire time inside the gap fires at
  the first instant after it (croniter moves `30 2 * * *` to 03:00 that day); expressions with
  a wildcard hour or minute simply have no fires in the missing hour.
- Fall back (a wall-clock hour that happens twice): an expression with a fixed minute and hour
  (`30 2 * * *`) fires once, at the first occurrence; croniter yields both occurrences, so the
  second is dropped here. An expression whose minute or hour field starts with `*` (`0 * * * *`,
  `*/30 * * * *`) fires in both occurrences, as it fires every hour of real time.

Fire times are aware datetimes in the schedule's zone. Compare or subtract them in UTC: Python
compares and subtracts two datetimes of the same zone by their wall-clock time.

An interval schedule fires every `interval_seconds` of real time from its anchor (its creation
time), whatever the timezone; the timezone only says how its fire times are shown.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, CroniterError, croniter

#: Cron expressions are classic five fields: minute hour day-of-month month day-of-week.
CRON_FIELDS = 5


class InvalidRecurrence(ValueError):
    """A cron expression, interval or timezone that cannot describe fire times; names the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def timezone_named(name: str) -> ZoneInfo:
    """The IANA timezone `name`; raises InvalidRecurrence naming `timezone`."""
    if not name or name.startswith(("/", ".")) or ".." in name:
        raise InvalidRecurrence("timezone", f"Unknown timezone {name!r}; use an IANA name.")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidRecurrence(
            "timezone", f"Unknown timezone {name!r}; use an IANA name such as Europe/Berlin."
        ) from None


def _check_cron(expression: str) -> None:
    fields = expression.split()
    if len(fields) != CRON_FIELDS:
        raise InvalidRecurrence(
            "cron",
            f"Must have 5 fields (minute hour day-of-month month day-of-week), not {len(fields)}.",
        )
    try:
        valid = croniter.is_valid(expression)
    except CroniterError:
        valid = False
    if not valid:
        raise InvalidRecurrence("cron", f"{expression!r} is not a valid cron expression.")


def _fixed_time(expression: str) -> bool:
    """Whether minute and hour are both fixed (Vixie cron: neither field starts with `*`)."""
    minute, hour = expression.split()[:2]
    return not minute.startswith("*") and not hour.startswith("*")


def _second_occurrence(moment: datetime) -> bool:
    """Whether `moment` is the repeat of a wall-clock time that happens twice (fall back)."""
    wall = moment.replace(tzinfo=None)
    first = wall.replace(tzinfo=moment.tzinfo, fold=0)
    second = wall.replace(tzinfo=moment.tzinfo, fold=1)
    return first.utcoffset() != second.utcoffset() and moment.utcoffset() == second.utcoffset()


@dataclass(frozen=True)
class Recurrence:
    """The fire times of a schedule: exactly one of `cron` and `interval_seconds`."""

    timezone: str
    cron: str | None = None
    interval_seconds: int | None = None
    #: Where an interval's fire times are counted from (the schedule's creation).
    anchor: datetime | None = None

    def __post_init__(self) -> None:
        if (self.cron is None) == (self.interval_seconds is None):
            raise InvalidRecurrence("cron", "Give exactly one of cron and intervalSeconds.")
        timezone_named(self.timezone)
        if self.cron is not None:
            _check_cron(self.cron)
        elif self.interval_seconds < 1:
            raise InvalidRecurrence("interval_seconds", "Must be at least 1.")
        elif self.anchor is None or self.anchor.tzinfo is None:
            raise ValueError("an interval needs an aware anchor")

    @property
    def zone(self) -> ZoneInfo:
        """The schedule's timezone."""
        return ZoneInfo(self.timezone)

    def fire_times_after(self, moment: datetime) -> Iterator[datetime]:
        """Every fire time strictly after `moment`, in order, in the schedule's timezone."""
        if self.interval_seconds is not None:
            yield from self._interval_after(moment)
        else:
            yield from self._cron_after(moment)

    def next_after(self, moment: datetime) -> datetime | None:
        """The first fire time strictly after `moment`; None if it never fires again."""
        return next(self.fire_times_after(moment), None)

    def upcoming(self, moment: datetime, count: int) -> list[datetime]:
        """The first `count` fire times strictly after `moment` (fewer if it stops firing)."""
        return list(islice(self.fire_times_after(moment), count))

    def _interval_after(self, moment: datetime) -> Iterator[datetime]:
        step = timedelta(seconds=self.interval_seconds)
        assert self.anchor is not None
        # In UTC: between two datetimes of one zone, Python counts wall-clock time, not real.
        anchor = self.anchor.astimezone(UTC)
        periods = max(0, (moment.astimezone(UTC) - anchor) // step + 1)
        zone = self.zone
        while True:
            yield (anchor + periods * step).astimezone(zone)
            periods += 1

    def _cron_after(self, moment: datetime) -> Iterator[datetime]:
        assert self.cron is not None
        fixed = _fixed_time(self.cron)
        try:
            times = croniter(self.cron, moment.astimezone(self.zone))
            while True:
                fire = times.get_next(datetime)
                if fixed and _second_occurrence(fire):
                    continue
                yield fire
        except CroniterBadDateError:
            # E.g. `0 0 30 2 *`: no such date in the years croniter searches.
            return


def shortest_gap(recurrence: Recurrence, moment: datetime, *, sample: int) -> timedelta | None:
    """The shortest time between two of the next `sample` fire times (None if fewer than two)."""
    times = [fire.astimezone(UTC) for fire in recurrence.upcoming(moment, sample)]
    gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
    return min(gaps) if gaps else None
