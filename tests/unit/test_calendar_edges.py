"""Edges of a tenant's calendar: zone names the settings must refuse (without a 500), buckets that
tile time without gaps or overlaps in every kind of zone for a whole year (DST of an hour and of
half an hour, quarter-hour offsets, a skipped midnight, a skipped day), ISO weeks at year ends,
the default windows, refusal days and the SQLite local_date function."""

from datetime import UTC, date, datetime, timedelta
from itertools import pairwise

import pytest

from adapters.sqlalchemy.engine import _local_date
from application.ports import Window
from application.reports.report_usage import MAX_BUCKETS, bounded_window
from domain.calendar import Calendar, Period, zone
from domain.errors import InvalidInput
from domain.refusals import Refusal, RefusedStart, days_of
from domain.sales import SalesGroupBy, SalesGrouping
from domain.tenants import TenantSettings

NEW_YORK = Calendar("America/New_York")
KATHMANDU = Calendar("Asia/Kathmandu")
LORD_HOWE = Calendar("Australia/Lord_Howe")  # +10:30, +11:00 in summer: DST of half an hour
SEOUL = Calendar("Asia/Seoul")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# --- zone names -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["utc", "UTC ", "Asia/Seoul\x00", "zone.tab", "tzdata.zi", "+09:00", "Asia//Seoul"]
)
def test_a_name_that_is_no_zone_is_invalid_input_naming_the_setting(name: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        TenantSettings(time_zone=name)

    assert refused.value.field == "time_zone"
    with pytest.raises(InvalidInput):
        Calendar(name)
    with pytest.raises(InvalidInput):
        zone(name)


@pytest.mark.parametrize("value", [9, None, 9.5, ["UTC"], b"UTC"])
def test_a_zone_that_is_no_string_is_invalid_input_naming_the_setting(value: object) -> None:
    with pytest.raises(InvalidInput) as refused:
        TenantSettings(time_zone=value)  # type: ignore[arg-type]

    assert refused.value.field == "time_zone"


@pytest.mark.parametrize(
    "name",
    [
        # Folders and over-long names made ZoneInfo raise IsADirectoryError and OSError at
        # 66dfafa (a 500), not InvalidInput.
        "Asia",
        "America",
        "America/Argentina",
        "Etc",
        "__pycache__",
        "Asia/" + "x" * 300,
        "posixrules",
        "posix/Asia/Seoul",
        "right/UTC",
        "localtime",  # the machine's own zone: two servers could disagree
    ],
)
def test_a_path_of_the_zone_database_that_is_no_zone_name_is_invalid_input(name: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        TenantSettings(time_zone=name)

    assert refused.value.field == "time_zone"


# --- buckets tile time --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "lengths"),
    [
        ("America/New_York", {23, 24, 25}),
        ("Asia/Kathmandu", {24}),
        ("Asia/Kolkata", {24}),
        ("Australia/Lord_Howe", {23.5, 24, 24.5}),
        ("Pacific/Chatham", {23, 24, 25}),  # +12:45, +13:45 in summer
        ("America/Santiago", {23, 24, 25}),  # clocks change at midnight
        ("America/Havana", {23, 24, 25}),  # clocks go back at 01:00 to 00:00
        ("Europe/London", {23, 24, 25}),
        ("Etc/GMT+5", {24}),
    ],
)
def test_a_years_days_follow_each_other_without_a_gap(name: str, lengths: set[float]) -> None:
    calendar = Calendar(name)
    days = list(calendar.buckets(Period.DAY, utc(2026, 1, 1), utc(2027, 1, 1)))

    assert all(a.end == b.start for a, b in pairwise(days))
    assert {(d.end - d.start) / timedelta(hours=1) for d in days} == lengths
    labels = [date.fromisoformat(d.label) for d in days]
    assert all(b - a == timedelta(days=1) for a, b in pairwise(labels))
    assert all(calendar.date_of(d.start) == day for d, day in zip(days, labels, strict=True))
    assert all(
        calendar.date_of(d.end - timedelta(microseconds=1)) == day
        for d, day in zip(days, labels, strict=True)
    )
    # Each day is the bucket of every instant in it, first and last.
    assert all(calendar.bucket(Period.DAY, d.start) == d for d in days)
    assert all(calendar.bucket(Period.DAY, d.end - timedelta(seconds=1)) == d for d in days)


@pytest.mark.parametrize("name", ["America/New_York", "Asia/Kathmandu", "Australia/Lord_Howe"])
def test_weeks_and_months_are_whole_days(name: str) -> None:
    calendar = Calendar(name)
    day_starts = {d.start for d in calendar.buckets(Period.DAY, utc(2025, 12, 1), utc(2027, 2, 1))}

    weeks = list(calendar.buckets(Period.WEEK, utc(2026, 1, 1), utc(2027, 1, 1)))
    months = list(calendar.buckets(Period.MONTH, utc(2026, 1, 1), utc(2027, 1, 1)))

    assert all(w.start in day_starts and w.end in day_starts for w in weeks)
    assert all(calendar.date_of(w.start).weekday() == 0 for w in weeks)
    assert all(a.end == b.start for a, b in pairwise(weeks))
    assert all(m.start in day_starts and calendar.date_of(m.start).day == 1 for m in months)
    assert all(a.end == b.start for a, b in pairwise(months))
    assert {f"2026-{n:02d}" for n in range(1, 13)} <= {m.label for m in months}
    assert len(months) in (12, 13)  # and the month either side that overlaps


def test_a_week_and_a_month_with_a_clock_change_are_an_hour_short_or_long() -> None:
    spring_week = NEW_YORK.bucket(Period.WEEK, utc(2026, 3, 8, 12))
    autumn_week = NEW_YORK.bucket(Period.WEEK, utc(2026, 11, 1, 12))
    march = NEW_YORK.bucket(Period.MONTH, utc(2026, 3, 15))

    assert spring_week.label == "2026-W10" and spring_week.start == utc(2026, 3, 2, 5)
    assert spring_week.end - spring_week.start == timedelta(days=7, hours=-1)
    assert autumn_week.label == "2026-W44" and autumn_week.end == utc(2026, 11, 2, 5)
    assert autumn_week.end - autumn_week.start == timedelta(days=7, hours=1)
    assert march.end - march.start == timedelta(days=31, hours=-1)


def test_half_an_hours_dst_moves_a_day_onto_and_off_the_utc_hour() -> None:
    # Lord Howe: +10:30 in winter (midnight at 13:30 UTC), +11:00 in summer (13:00 UTC).
    winter = LORD_HOWE.bucket(Period.DAY, utc(2026, 7, 1, 3))
    summer = LORD_HOWE.bucket(Period.DAY, utc(2026, 12, 1, 3))
    change = LORD_HOWE.bucket(Period.DAY, utc(2026, 10, 4, 3))  # first Sunday of October

    assert winter.start == utc(2026, 6, 30, 13, 30) and not LORD_HOWE.on_the_hour(winter.start)
    assert summer.start == utc(2026, 11, 30, 13) and LORD_HOWE.on_the_hour(summer.start)
    assert change.end - change.start == timedelta(hours=23, minutes=30)
    assert not LORD_HOWE.on_the_hour(change.start)


def test_a_quarter_hour_zone_cuts_days_at_a_quarter_past() -> None:
    day = KATHMANDU.bucket(Period.DAY, utc(2026, 12, 1, 18, 14))
    following = KATHMANDU.bucket(Period.DAY, utc(2026, 12, 1, 18, 15))

    assert (day.label, day.start, day.end) == (
        "2026-12-01",
        utc(2026, 11, 30, 18, 15),
        utc(2026, 12, 1, 18, 15),
    )
    assert following.label == "2026-12-02"
    assert not KATHMANDU.on_the_hour(day.start)
    month = KATHMANDU.bucket(Period.MONTH, utc(2026, 12, 31, 18, 15))
    assert (month.label, month.start) == ("2027-01", utc(2026, 12, 31, 18, 15))


def test_a_day_samoa_skipped_is_no_bucket_and_the_days_around_it_touch() -> None:
    apia = Calendar("Pacific/Apia")  # 29 December 2011 was followed by the 31st

    days = list(apia.buckets(Period.DAY, utc(2011, 12, 29, 10), utc(2012, 1, 1, 10)))

    assert [d.label for d in days] == ["2011-12-29", "2011-12-31", "2012-01-01"]
    assert all(a.end == b.start for a, b in pairwise(days))
    assert all(d.end - d.start == timedelta(days=1) for d in days)


@pytest.mark.parametrize(
    ("at", "label"),
    [
        (utc(2020, 12, 31, 12), "2020-W53"),
        (utc(2021, 1, 3, 12), "2020-W53"),
        (utc(2021, 1, 4, 12), "2021-W01"),
        (utc(2024, 12, 30, 12), "2025-W01"),
        (utc(2026, 12, 31, 12), "2026-W53"),
    ],
)
def test_a_week_near_new_year_carries_its_iso_year(at: datetime, label: str) -> None:
    assert NEW_YORK.bucket(Period.WEEK, at).label == label


def test_a_week_and_a_month_near_the_latest_date_do_not_overflow() -> None:
    last = utc(2999, 12, 31)
    for calendar in (Calendar("Pacific/Kiritimati"), Calendar("Etc/GMT+12"), KATHMANDU):
        month = calendar.bucket(Period.MONTH, last)
        week = calendar.bucket(Period.WEEK, last)
        assert month.start <= last < month.end and week.start <= last < week.end
        assert calendar.shift(Period.MONTH, month.start, -12_000).year == 1999


# --- windows ------------------------------------------------------------------------------------


def test_the_default_thirty_days_are_whole_local_days_today_included_across_a_clock_change() -> (
    None
):
    now = utc(2026, 3, 20, 3)  # 23:00 on the 19th in New York

    window = Window.of_days(None, None, now, NEW_YORK, 30)

    assert window.end == utc(2026, 3, 20, 4)  # 20 March, 00:00 EDT
    assert window.start == utc(2026, 2, 18, 5)  # 18 February, 00:00 EST
    assert window.start is not None and window.end is not None
    days = list(NEW_YORK.buckets(Period.DAY, window.start, window.end))
    assert len(days) == 30 and days[-1].label == "2026-03-19"


def test_a_window_of_exactly_1000_buckets_is_taken_and_1001_refused() -> None:
    now = utc(2026, 12, 1)
    monday = NEW_YORK.start_of(Period.WEEK, utc(2000, 1, 5))
    first = utc(2000, 2, 15)

    weeks = bounded_window(
        NEW_YORK, Period.WEEK, monday, NEW_YORK.shift(Period.WEEK, monday, MAX_BUCKETS), now
    )
    months = bounded_window(
        KATHMANDU,
        Period.MONTH,
        KATHMANDU.start_of(Period.MONTH, first),
        KATHMANDU.shift(Period.MONTH, KATHMANDU.start_of(Period.MONTH, first), MAX_BUCKETS),
        now,
    )

    assert weeks.start == monday and months.start is not None
    with pytest.raises(InvalidInput) as refused:
        bounded_window(
            NEW_YORK, Period.WEEK, monday, NEW_YORK.shift(Period.WEEK, monday, 1001), now
        )
    assert refused.value.field == "to"


def test_refusals_are_counted_on_the_tenants_day() -> None:
    # 15:30 UTC on 30 November is 00:30 on 1 December in Seoul.
    refused = RefusedStart.at(
        utc(2026, 11, 30, 15, 30), "u", "practice", Refusal.QUOTA_EXCEEDED, SEOUL
    )

    assert refused.day == date(2026, 12, 1)
    assert days_of(utc(2026, 11, 30, 15), utc(2026, 12, 1, 15), SEOUL) == (
        date(2026, 12, 1),
        date(2026, 12, 1),
    )
    assert days_of(utc(2026, 11, 30, 18, 15), utc(2026, 12, 2, 18, 15), KATHMANDU) == (
        date(2026, 12, 1),
        date(2026, 12, 2),
    )


def test_only_sales_by_day_carry_the_zone() -> None:
    assert SalesGrouping.parse("day", "Asia/Seoul") == SalesGrouping(
        SalesGroupBy.DAY, time_zone="Asia/Seoul"
    )
    assert SalesGrouping.parse("attributes.store", "Asia/Seoul").time_zone == "UTC"


# --- SQLite's local_date ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stored", "name", "day"),
    [
        ("2026-11-30 15:00:00.000000", "Asia/Seoul", "2026-12-01"),
        ("2026-11-30 14:59:59.999000", "Asia/Seoul", "2026-11-30"),
        ("2026-11-30 18:15:00", "Asia/Kathmandu", "2026-12-01"),
        ("2026-11-30 18:14:59", "Asia/Kathmandu", "2026-11-30"),
        ("2026-11-01 05:30:00", "America/New_York", "2026-11-01"),  # 01:30 EST, the second
        ("2026-03-08 04:59:00", "America/New_York", "2026-03-07"),
        ("2026-12-01 09:00:00", "UTC", "2026-12-01"),
    ],
)
def test_sqlites_local_date_gives_the_local_day(stored: str, name: str, day: str) -> None:
    assert _local_date(stored, name) == day
    assert _local_date(None, name) is None
