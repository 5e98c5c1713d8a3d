"""Buckets and their sums: the rules every store's rollups follow."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from domain.calendar import Calendar, Period
from domain.rollups import (
    Activity,
    Rollup,
    ServerLoad,
    UsageFilter,
    dimensions_of,
    overlap_seconds,
    sum_of,
    usage_figures,
)

DAY = datetime(2026, 11, 24, tzinfo=UTC)


def test_only_the_part_of_an_interval_inside_a_bucket_counts() -> None:
    bucket, length = DAY + timedelta(hours=9), timedelta(hours=1)

    assert (
        overlap_seconds(
            bucket - timedelta(minutes=5), bucket + timedelta(minutes=5), bucket, length
        )
        == 300
    )
    assert (
        overlap_seconds(bucket - timedelta(hours=2), bucket - timedelta(hours=1), bucket, length)
        == 0
    )


def test_a_day_is_the_sum_of_its_hours_resource_by_resource() -> None:
    nine = Rollup(
        Period.HOUR,
        DAY + timedelta(hours=9),
        [
            Activity("webinar", "w-1", 2, 1, 3600.0, 5, {"cost_usd": Decimal("0.5")}),
            Activity("livekit", "room", 1, 0, 60.0, 0, {}, {"video.seconds": 60.0}),
        ],
        ServerLoad(6, 1000, 120.0, 30.0, 60, 12),
    )
    ten = Rollup(
        Period.HOUR,
        DAY + timedelta(hours=10),
        [Activity("webinar", "w-1", 0, 1, 1800.0, 1, {"cost_usd": 1})],
        ServerLoad(6, 500, 60.0, 45.0, 30, 8),
    )

    day = sum_of([nine, ten], Period.DAY, DAY)

    assert day.activity == [
        Activity("livekit", "room", 1, 0, 60.0, 0, {}, {"video.seconds": 60.0}),
        Activity("webinar", "w-1", 2, 2, 5400.0, 6, {"cost_usd": Decimal("1.5")}),
    ]
    assert day.load == ServerLoad(12, 1500, 180.0, 45.0, 90, 12)
    bucket = Calendar().bucket(Period.DAY, DAY)
    (figures,) = usage_figures(day, bucket, UsageFilter(kind="webinar"))
    assert (figures.activity.sessions_started, figures.cpu_percent_avg) == (2, 15.0)
    assert usage_figures(day, bucket)[0].video_minutes == 1.0


def test_activity_is_kept_apart_by_dimension_and_grouped_or_filtered_by_one() -> None:
    seoul, busan = (("country", "KR"), ("store_id", "S1")), (("store_id", "S2"),)
    hour = Rollup(
        Period.HOUR,
        DAY,
        [
            Activity("kiosk", "k-1", 2, 0, 60.0, dimensions=seoul),
            Activity("kiosk", "k-1", 1, 0, 30.0),
            Activity("kiosk", "k-2", 3, 0, 90.0, dimensions=busan),
        ],
    )
    again = Rollup(
        Period.HOUR, DAY + timedelta(hours=1), [Activity("kiosk", "k-1", 1, dimensions=seoul)]
    )
    bucket = Calendar().bucket(Period.DAY, DAY)

    day = sum_of([hour, again], Period.DAY, DAY)
    by_store = usage_figures(day, bucket, UsageFilter(group_by="store_id"))
    korea = usage_figures(day, bucket, UsageFilter(dimensions={"country": "KR"}))

    assert [(a.resource_id, a.dimensions, a.sessions_started) for a in day.activity] == [
        ("k-1", (), 1),
        ("k-1", seoul, 3),
        ("k-2", busan, 3),
    ]
    assert [(f.group, f.activity.sessions_started) for f in by_store] == [
        ("S1", 3),
        ("S2", 3),
        (None, 1),
    ]
    assert [(f.group, f.activity.active_seconds) for f in korea] == [(None, 60.0)]
    assert dimensions_of({"store_id": 7, "country": "KR", "x": True}, ["store_id", "country"]) == (
        ("country", "KR"),
        ("store_id", "7"),
    )
