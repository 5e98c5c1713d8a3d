"""A tenant's calendar: UTC hours, and days, ISO weeks and months of its time zone, correct when
clocks change and in zones whose offset is not whole hours."""

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest

from domain.calendar import Calendar, Period, period, zone
from domain.errors import InvalidInput
from domain.tenants import TenantSettings

SEOUL = Calendar("Asia/Seoul")
KOLKATA = Calendar("Asia/Kolkata")
NEW_YORK = Calendar("America/New_York")
SANTIAGO = Calendar("America/Santiago")  # its clocks change at local midnight


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_a_utc_day_starts_at_nine_in_seoul() -> None:
    day = SEOUL.bucket(Period.DAY, utc(2026, 12, 1, 14, 59))

    assert (day.start, day.end, day.label) == (
        utc(2026, 11, 30, 15),
        utc(2026, 12, 1, 15),
        "2026-12-01",
    )
    assert SEOUL.bucket(Period.DAY, utc(2026, 12, 1, 15)).label == "2026-12-02"


def test_hours_stay_utc_hours_in_every_zone() -> None:
    hour = KOLKATA.bucket(Period.HOUR, utc(2026, 12, 1, 9, 45))

    assert (hour.start, hour.end, hour.label) == (
        utc(2026, 12, 1, 9),
        utc(2026, 12, 1, 10),
        "2026-12-01T09:00Z",
    )


def test_a_half_hour_zone_cuts_days_between_utc_hours() -> None:
    day = KOLKATA.bucket(Period.DAY, utc(2026, 12, 1, 12))

    assert (day.start, day.end) == (utc(2026, 11, 30, 18, 30), utc(2026, 12, 1, 18, 30))
    assert not KOLKATA.on_the_hour(day.start)
    assert SEOUL.on_the_hour(SEOUL.start_of(Period.DAY, utc(2026, 12, 1)))


def test_days_are_23_or_25_hours_long_when_clocks_change() -> None:
    spring = NEW_YORK.bucket(Period.DAY, utc(2026, 3, 8, 12))
    autumn = NEW_YORK.bucket(Period.DAY, utc(2026, 11, 1, 12))

    assert (spring.label, spring.end - spring.start) == ("2026-03-08", timedelta(hours=23))
    assert (autumn.label, autumn.end - autumn.start) == ("2026-11-01", timedelta(hours=25))
    assert spring.start == utc(2026, 3, 8, 5) and autumn.start == utc(2026, 11, 1, 4)
    days = list(NEW_YORK.buckets(Period.DAY, utc(2026, 3, 7, 12), utc(2026, 3, 9, 12)))
    assert [d.label for d in days] == ["2026-03-07", "2026-03-08", "2026-03-09"]
    assert all(a.end == b.start for a, b in pairwise(days))


def test_a_day_whose_midnight_is_skipped_starts_when_the_clocks_change() -> None:
    # Chile moves its clocks from 00:00 to 01:00 on the first Sunday of September.
    day = SANTIAGO.bucket(Period.DAY, utc(2026, 9, 6, 12))

    assert day.label == "2026-09-06"
    assert day.start.astimezone(SANTIAGO.zone).hour == 1
    assert day.end - day.start == timedelta(hours=23)
    assert SANTIAGO.bucket(Period.DAY, day.start - timedelta(seconds=1)).label == "2026-09-05"


def test_weeks_are_iso_weeks_from_monday_and_months_calendar_months() -> None:
    week = SEOUL.bucket(Period.WEEK, utc(2026, 12, 2))
    month = NEW_YORK.bucket(Period.MONTH, utc(2026, 11, 15))

    assert (week.label, week.start, week.end - week.start) == (
        "2026-W49",
        utc(2026, 11, 29, 15),  # Monday 30 November, 00:00 in Seoul
        timedelta(days=7),
    )
    assert (month.label, month.start, month.end) == (
        "2026-11",
        utc(2026, 11, 1, 4),
        utc(2026, 12, 1, 5),
    )
    assert SEOUL.bucket(Period.WEEK, utc(2027, 1, 1)).label == "2026-W53"


def test_shifting_counts_local_buckets_not_hours() -> None:
    march = NEW_YORK.start_of(Period.MONTH, utc(2026, 3, 15))

    assert NEW_YORK.shift(Period.MONTH, march, -3) == utc(2025, 12, 1, 5)
    assert NEW_YORK.shift(Period.MONTH, march, 10) == utc(2027, 1, 1, 5)
    assert NEW_YORK.shift(Period.DAY, utc(2026, 3, 8, 5), 1) == utc(2026, 3, 9, 4)
    assert NEW_YORK.shift(Period.HOUR, utc(2026, 3, 8, 5), -2) == utc(2026, 3, 8, 3)


@pytest.mark.parametrize("name", ["Mars/Olympus", "", "../etc/passwd", "UTC+9"])
def test_an_unknown_zone_is_refused_naming_the_setting(name: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        TenantSettings(time_zone=name)

    assert refused.value.field == "time_zone"
    with pytest.raises(InvalidInput):
        zone(name)


def test_a_bucket_size_is_one_of_four() -> None:
    assert period("week") is Period.WEEK
    with pytest.raises(InvalidInput) as refused:
        period("fortnight")
    assert refused.value.field == "bucket"


def test_settings_take_at_most_eight_dimensions() -> None:
    assert TenantSettings(dimensions=("store_id", "store_id", "country")).dimensions == (
        "store_id",
        "country",
    )
    with pytest.raises(InvalidInput) as refused:
        TenantSettings(dimensions=tuple(f"d{n}" for n in range(9)))
    assert refused.value.field == "dimensions"
