"""The buckets reports count in: UTC hours, and the days, ISO weeks (from Monday) and months of a
tenant's time zone.

A bucket is bounded by UTC instants, so that it can be compared with anything stored. A local day
is not always 24 hours (23 or 25 when clocks change) and does not always start on a UTC hour
(Asia/Kolkata is UTC+05:30); its bounds are local midnights, whatever they are in UTC.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from enum import StrEnum
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

from domain.errors import InvalidInput

HOUR = timedelta(hours=1)


class Period(StrEnum):
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


def period(value: str) -> Period:
    try:
        return Period(value)
    except ValueError:
        raise InvalidInput("bucket", "must be hour, day, week or month") from None


def hour_of(at: datetime) -> datetime:
    """The start of the UTC hour that holds `at`."""
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def zone(name: str) -> tzinfo:
    """The IANA time zone named (`Asia/Seoul`, `UTC`). Only names of the zone database are
    looked up: ZoneInfo would read any path it is given (a folder, a name too long for the file
    system) and fail in ways of its own."""
    if name not in _zone_names():
        raise InvalidInput("time_zone", "must be an IANA time zone name such as UTC or Asia/Seoul")
    return ZoneInfo(name)


@cache
def _zone_names() -> frozenset[str]:
    # localtime is the machine's own zone, whatever it is: two servers could disagree.
    return frozenset(available_timezones()) - {"localtime"}


@dataclass(frozen=True)
class Bucket:
    period: Period
    start: datetime  # UTC
    end: datetime  # UTC, the next bucket's start
    label: str  # in local time: 2026-12-01, 2026-W49, 2026-12; hours: 2026-12-01T09:00Z


@dataclass(frozen=True)
class Calendar:
    """A tenant's calendar: its buckets of each period, as UTC instants."""

    time_zone: str = "UTC"  # IANA name; stores that group by local day are told it
    zone: tzinfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "zone", zone(self.time_zone))

    def start_of(self, period: Period, at: datetime) -> datetime:
        """The start of the bucket that holds `at`."""
        if period is Period.HOUR:
            return hour_of(at)
        day = self.date_of(at)
        if period is Period.WEEK:
            day -= timedelta(days=day.weekday())
        elif period is Period.MONTH:
            day = day.replace(day=1)
        return self._midnight(day)

    def bucket(self, period: Period, at: datetime) -> Bucket:
        """The bucket that holds `at`."""
        start = self.start_of(period, at)
        return Bucket(period, start, self.shift(period, start, 1), self._label(period, start))

    def day(self, day: date) -> Bucket:
        """The local calendar day `day`."""
        start = self._midnight(day)
        return Bucket(Period.DAY, start, self.shift(Period.DAY, start, 1), day.isoformat())

    def buckets(self, period: Period, start: datetime, end: datetime) -> Iterator[Bucket]:
        """The buckets that overlap [start, end), oldest first."""
        bucket = self.bucket(period, start)
        while bucket.start < end:
            yield bucket
            bucket = self.bucket(period, bucket.end)

    def shift(self, period: Period, start: datetime, count: int) -> datetime:
        """The start of the bucket `count` buckets after (before, when negative) the one that
        starts at `start`, counted in local days and months, not in hours."""
        if period is Period.HOUR:
            return start + count * HOUR
        day = self.date_of(start)
        if period is Period.DAY:
            day += timedelta(days=count)
        elif period is Period.WEEK:
            day += timedelta(weeks=count)
        else:
            months = day.year * 12 + day.month - 1 + count
            day = date(months // 12, months % 12 + 1, 1)
        return self._midnight(day)

    def on_the_hour(self, day: datetime) -> bool:
        """Whether the local day that starts at `day` starts and ends on UTC hours, so that it
        is a sum of whole hours (false for Asia/Kolkata's days)."""
        end = self.shift(Period.DAY, day, 1)
        return hour_of(day) == day and hour_of(end) == end

    def _label(self, period: Period, start: datetime) -> str:
        if period is Period.HOUR:
            return start.strftime("%Y-%m-%dT%H:00Z")
        day = self.date_of(start)
        if period is Period.WEEK:
            year, week, _ = day.isocalendar()
            return f"{year}-W{week:02d}"
        if period is Period.MONTH:
            return f"{day.year}-{day.month:02d}"
        return day.isoformat()

    def date_of(self, at: datetime) -> date:
        """The local calendar day that holds `at`."""
        return at.astimezone(self.zone).date()

    def _midnight(self, day: date) -> datetime:
        # Where midnight does not exist (clocks go forward at 00:00) this is the instant of the
        # change, the day's first; where it happens twice, the first of them.
        return datetime.combine(day, time(), self.zone).astimezone(UTC)
