"""Edges of a tenant's time zone over HTTP: hostile `time_zone` and `dimensions` settings, the
usage report's bucket limits near the date bounds, days of 23 and 25 hours and of zones whose
midnight is not on a UTC hour rolled up by the real job, sales grouped by local day on every
store, the monthly resource quota at a local month boundary, and the schema."""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from dependency_injector import providers

from application.rollups.roll_up_usage import RollUpUsageCommand
from application.trials.register_resource import RegisterResourceCommand
from domain.calendar import Calendar
from tests.app_client import Api
from tests.fakes import FakeClock
from tests.http.envelope import assert_error, invalid_fields

MEMORY_ONLY = pytest.mark.parametrize("storage_url", ["memory"], indirect=True)
FREE = {
    "default": True,
    "limits": {"sessions_per_resource": 5, "session_kinds": ["practice"], "resources_per_month": 1},
}


def put_settings(api: Api, **body: object) -> Any:
    return api.client.put("/v1/settings", json=body, headers=api.admin)


def usage(api: Api, **params: str) -> Any:
    return api.client.get("/v1/reports/usage", params=params, headers=api.admin)


def roll_up(api: Api, since: datetime) -> None:
    command = RollUpUsageCommand("acme", since=since)
    run = api.run(lambda: api.container.jobs.roll_up_usage()(command))
    assert not run.failures, run.failures


def visit(api: Api, start: datetime, end: datetime, resource_id: str = "webinar-1") -> None:
    session = api.start(started_at=start.isoformat(), resource_id=resource_id)
    ended = api.client.post(
        f"/v1/sessions/{session['id']}/exit", json={"at": end.isoformat()}, headers=api.app
    )
    assert ended.status_code == 200, ended.text


def z(at: datetime) -> str:
    return f"{at.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"


# --- settings: hostile time_zone and dimensions -------------------------------------------------


@MEMORY_ONLY
@pytest.mark.parametrize(
    "value",
    [
        "utc",
        "asia/seoul",
        "UTC ",
        "Asia/Seoul\x00",
        "Asia/Seoul/",
        "/usr/share/zoneinfo/UTC",
        "zone.tab",
        "tzdata.zi",
        "+09:00",
        "A" * 65,
        "Asia/" + "x" * 59,
        "x" * 100_000,
        "",
        9,
        9.5,
        None,
        True,
        ["Asia/Seoul"],
        {"name": "Asia/Seoul"},
    ],
)
def test_a_bad_time_zone_is_a_422_naming_it_and_changes_nothing(api: Api, value: object) -> None:
    assert invalid_fields(put_settings(api, time_zone=value)) == ["time_zone"]
    kept = api.client.get("/v1/settings", headers=api.admin).json()
    assert kept["time_zone"] == "UTC"


@MEMORY_ONLY
@pytest.mark.parametrize(
    "value",
    [
        # A folder of the zone database was a 500 at 66dfafa (IsADirectoryError).
        "Asia",
        "America",
        "Etc",
        "America/Argentina",
        "posixrules",
        "posix/Asia/Seoul",
        "right/UTC",
        "localtime",  # the machine's own zone: two servers could disagree,
    ],
)
def test_a_path_of_the_zone_database_that_is_no_zone_name_is_a_422(api: Api, value: str) -> None:
    assert invalid_fields(put_settings(api, time_zone=value)) == ["time_zone"]


@MEMORY_ONLY
@pytest.mark.parametrize(
    "value", ["Etc/GMT+5", "America/Argentina/Buenos_Aires", "Asia/Kathmandu", "ROK", "UTC"]
)
def test_real_zone_names_are_taken_and_read_back(api: Api, value: str) -> None:
    taken = put_settings(api, time_zone=value)

    assert taken.status_code == 200, taken.text
    assert taken.json()["time_zone"] == value
    assert api.client.get("/v1/settings", headers=api.admin).json()["time_zone"] == value


@MEMORY_ONLY
@pytest.mark.parametrize(
    "value",
    [
        None,
        "store_id",
        {"store_id": True},
        [None],
        [1],
        [["store_id"]],
        [""],
        ["x" * 65],
        ["store id"],
        [f"d{n}" for n in range(9)],
        ["d"] * 101,
    ],
)
def test_bad_dimensions_are_a_422_naming_them(api: Api, value: object) -> None:
    assert invalid_fields(put_settings(api, dimensions=value)) == ["dimensions"]
    assert api.client.get("/v1/settings", headers=api.admin).json()["dimensions"] == []


@MEMORY_ONLY
def test_dimensions_repeated_are_kept_once_in_order(api: Api) -> None:
    names = ["store_id", "country", "store_id", "d0", "d1", "country", "d2", "d3"]

    taken = put_settings(api, dimensions=names)

    assert taken.status_code == 200, taken.text
    assert taken.json()["dimensions"] == ["store_id", "country", "d0", "d1", "d2", "d3"]
    read = api.client.get("/v1/settings", headers=api.admin).json()
    assert read["dimensions"] == taken.json()["dimensions"]


@MEMORY_ONLY
def test_a_bad_zone_beside_a_good_setting_changes_neither(api: Api) -> None:
    refused = put_settings(api, time_zone="Mars/Olympus", dimensions=["store_id"])

    assert invalid_fields(refused) == ["time_zone"]
    kept = api.client.get("/v1/settings", headers=api.admin).json()
    assert (kept["time_zone"], kept["dimensions"]) == ("UTC", [])


# --- usage report: bucket counts and the date bounds --------------------------------------------


@MEMORY_ONLY
@pytest.mark.parametrize("zone", ["UTC", "Asia/Kathmandu", "America/New_York"])
def test_exactly_1000_weeks_or_months_are_served_and_1001_refused(api: Api, zone: str) -> None:
    assert put_settings(api, time_zone=zone).status_code == 200
    local = ZoneInfo(zone)
    monday = datetime(2000, 1, 3, tzinfo=local)  # a Monday
    first_month = datetime(2000, 2, 1, tzinfo=local)

    def window(start: datetime, end: datetime) -> dict[str, str]:
        return {"from": start.isoformat(), "to": end.isoformat()}

    weeks_1000 = window(monday, monday + timedelta(weeks=1000))
    weeks_1001 = window(monday, monday + timedelta(weeks=1001))
    months_1000 = window(first_month, datetime(2083, 6, 1, tzinfo=local))
    months_1001 = window(first_month, datetime(2083, 7, 1, tzinfo=local))

    assert usage(api, bucket="week", **weeks_1000).status_code == 200
    assert invalid_fields(usage(api, bucket="week", **weeks_1001)) == ["to"]
    assert usage(api, bucket="month", **months_1000).status_code == 200
    assert invalid_fields(usage(api, bucket="month", **months_1001)) == ["to"]
    # A `from` one second after a local month's start: that month does not start in the window.
    later = window(first_month + timedelta(seconds=1), datetime(2083, 7, 1, tzinfo=local))
    assert usage(api, bucket="month", **later).status_code == 200


@MEMORY_ONLY
@pytest.mark.parametrize("zone", ["UTC", "Pacific/Kiritimati", "Etc/GMT+12", "Asia/Kathmandu"])
@pytest.mark.parametrize("bucket", ["hour", "day", "week", "month"])
def test_windows_at_the_date_bounds_are_served_or_refused_never_a_500(
    api: Api, zone: str, bucket: str
) -> None:
    assert put_settings(api, time_zone=zone).status_code == 200

    def status(**params: str) -> int:
        response = usage(api, bucket=bucket, **params)
        assert response.status_code in (200, 422), response.text
        return int(response.status_code)

    assert status(**{"to": "2000-01-01T00:00:00Z"}) == 200  # from defaults before 2000
    assert status(**{"from": "2000-01-01T00:00:00Z", "to": "2000-01-02T00:00:00Z"}) == 200
    assert status(**{"from": "2999-12-30T00:00:00Z", "to": "2999-12-31T00:00:00Z"}) == 200
    assert status(**{"to": "2999-12-31T00:00:00Z"}) == 200
    assert status(**{"from": "2999-12-30T00:00:00Z"}) == 422  # after the default to
    assert status(**{"from": "1999-12-31T23:59:59Z"}) == 422
    assert status(**{"to": "2999-12-31T00:00:01Z"}) == 422
    assert status(**{"from": "2999-12-31T00:00:00+14:00", "to": "2999-12-31T00:00:00Z"}) == 200


@MEMORY_ONLY
def test_an_empty_window_that_starts_mid_month_is_empty_not_an_error(api: Api) -> None:
    # No month starts in [15 Jan, 20 Jan): nothing to report, and no 500.
    found = usage(
        api, bucket="month", **{"from": "2026-01-15T00:00:00Z", "to": "2026-01-20T00:00:00Z"}
    )

    assert found.status_code == 200, found.text
    assert found.json()["items"] == []


@pytest.mark.parametrize("zone", ["Asia/Kathmandu", "America/New_York"])
def test_the_trial_reports_default_window_is_thirty_local_days(api: Api, zone: str) -> None:
    assert put_settings(api, time_zone=zone).status_code == 200
    # 23:50 UTC on 7 March 2026: 05:35 on the 8th in Kathmandu, 18:50 on the 7th in New York.
    now = datetime(2026, 3, 7, 23, 50, tzinfo=UTC)
    clock = FakeClock(now)
    api.container.outside.clock.override(providers.Object(clock))
    try:
        default = api.client.get("/v1/reports/trials", headers=api.admin)
        to_only = api.client.get(
            "/v1/reports/trials", params={"to": "2026-03-09T12:00:00Z"}, headers=api.admin
        )
    finally:
        api.container.outside.clock.reset_override()

    local = ZoneInfo(zone)
    today = now.astimezone(local).date()
    midnight = datetime.combine(today + timedelta(days=1), datetime.min.time(), local)
    first = datetime.combine(today - timedelta(days=29), datetime.min.time(), local)
    assert default.status_code == 200, default.text
    assert (default.json()["from"], default.json()["to"]) == (z(first), z(midnight))
    to_day = datetime(2026, 3, 9, 12, tzinfo=UTC).astimezone(local).date()
    start = datetime.combine(to_day - timedelta(days=30), datetime.min.time(), local)
    assert to_only.json()["from"] == z(start)


@pytest.mark.parametrize(
    "params",
    [
        {"to": "2000-01-01T00:00:00Z"},
        {"from": "2000-01-01T00:00:00Z", "to": "2000-01-01T00:00:01Z"},
        {"to": "2999-12-31T00:00:00Z"},
        {"from": "2999-12-30T23:59:59Z", "to": "2999-12-31T00:00:00Z"},
    ],
)
def test_trial_funnel_and_sales_reports_at_the_date_bounds_in_a_far_zone(
    api: Api, params: dict[str, str]
) -> None:
    assert put_settings(api, time_zone="Pacific/Kiritimati").status_code == 200  # +14:00

    trials = api.client.get("/v1/reports/trials", params=params, headers=api.admin)
    funnel = api.client.get("/v1/reports/funnel/none", params=params, headers=api.admin)
    sales = api.client.get(
        "/v1/reports/sales", params={"group_by": "day", **params}, headers=api.admin
    )

    assert trials.status_code == 200, trials.text
    assert trials.json()["trial_subjects"] == 0
    assert_error(funnel, 404, "not_found")
    assert sales.status_code == 200 and sales.json()["items"] == [], sales.text


# --- rolled up days: 23 and 25 hours, half- and quarter-hour zones ------------------------------


@pytest.mark.parametrize(("day", "hours_long"), [("2026-03-08", 23), ("2026-11-01", 25)])
def test_a_new_york_day_of_23_or_25_hours_is_the_sum_of_its_hours(
    api: Api, day: str, hours_long: int
) -> None:
    assert put_settings(api, time_zone="America/New_York").status_code == 200
    ny = ZoneInfo("America/New_York")
    midnight = datetime.fromisoformat(day).replace(tzinfo=ny).astimezone(UTC)
    end = (datetime.fromisoformat(day) + timedelta(days=1)).replace(tzinfo=ny).astimezone(UTC)
    assert end - midnight == timedelta(hours=hours_long)
    # Two days later, the clock: the sessions are within the late-data window and retention.
    clock = FakeClock(end + timedelta(days=1, hours=7))
    api.container.outside.clock.override(providers.Object(clock))
    try:
        # One session across the whole local day and half an hour either side; one inside it.
        visit(api, midnight - timedelta(minutes=30), end + timedelta(minutes=30))
        visit(api, midnight + timedelta(hours=2), midnight + timedelta(hours=2, minutes=10))
        roll_up(api, midnight - timedelta(hours=2))
        days = usage(api, bucket="day", **{"from": z(midnight), "to": z(end)})
        hours = usage(api, bucket="hour", **{"from": z(midnight), "to": z(end)})
        monday = midnight - timedelta(days=6)  # the day is a Sunday
        week = usage(api, bucket="week", **{"from": z(monday), "to": z(end)})
        months = usage(
            api, bucket="month", **{"from": z(midnight - timedelta(days=40)), "to": z(end)}
        )
    finally:
        api.container.outside.clock.reset_override()

    assert days.status_code == 200, days.text
    (found,) = days.json()["items"]
    assert (found["label"], found["start"], found["end"]) == (day, z(midnight), z(end))
    assert found["active_seconds"] == hours_long * 3600 + 600
    assert (found["sessions_started"], found["sessions_ended"]) == (1, 1)
    assert len(hours.json()["items"]) == hours_long
    assert sum(h["active_seconds"] for h in hours.json()["items"]) == found["active_seconds"]
    (the_week,) = week.json()["items"]
    assert (the_week["start"], the_week["end"]) == (z(monday), z(end))
    assert the_week["active_seconds"] == 1800 + hours_long * 3600 + 600
    by_month = {m["label"]: m["active_seconds"] for m in months.json()["items"]}
    assert day[:7] in by_month
    assert sum(by_month.values()) == hours_long * 3600 + 3600 + 600


@pytest.mark.parametrize(
    ("zone", "offset"),
    [
        ("Asia/Kolkata", timedelta(hours=5, minutes=30)),
        ("Asia/Kathmandu", timedelta(hours=5, minutes=45)),
    ],
)
def test_a_day_between_utc_hours_counts_only_what_falls_inside_it(
    api: Api, zone: str, offset: timedelta
) -> None:
    assert put_settings(api, time_zone=zone).status_code == 200
    local = ZoneInfo(zone)
    today = datetime.now(local).date()
    # Two days ago, local midnight: the rollup's raw-data day path, inside every retention.
    start_day = datetime.combine(today - timedelta(days=2), datetime.min.time(), local)
    midnight = start_day.astimezone(UTC)
    assert midnight.minute == (60 - offset.seconds // 60 % 60) % 60
    end = midnight + timedelta(days=1)
    # 20 minutes before the midnight and 40 after; then 10 minutes just before the next one.
    visit(api, midnight - timedelta(minutes=20), midnight + timedelta(minutes=40))
    visit(api, end - timedelta(minutes=11), end - timedelta(minutes=1))
    roll_up(api, midnight - timedelta(hours=3))

    days = usage(
        api,
        bucket="day",
        **{"from": z(midnight - timedelta(days=1)), "to": z(end + timedelta(days=1))},
    ).json()["items"]

    by_label = {d["label"]: d for d in days}
    this = by_label[f"{start_day:%Y-%m-%d}"]
    before = by_label[f"{start_day - timedelta(days=1):%Y-%m-%d}"]
    assert (this["start"], this["end"]) == (z(midnight), z(end))
    assert this["active_seconds"] == 40 * 60 + 10 * 60
    assert before["active_seconds"] == 20 * 60
    assert (this["sessions_started"], this["sessions_ended"]) == (1, 2)
    assert (before["sessions_started"], before["sessions_ended"]) == (1, 0)
    # The same figures summed into the week(s) and month(s) the days belong to.
    weeks = usage(
        api,
        bucket="week",
        **{"from": z(midnight - timedelta(days=8)), "to": z(end + timedelta(days=8))},
    ).json()["items"]
    assert sum(w["active_seconds"] for w in weeks) == 70 * 60


def test_a_second_rollup_run_from_mid_day_keeps_a_half_hour_days_figure(api: Api) -> None:
    assert put_settings(api, time_zone="Asia/Kolkata").status_code == 200
    local = ZoneInfo("Asia/Kolkata")
    today = datetime.now(local).date()
    midnight = datetime.combine(today - timedelta(days=2), datetime.min.time(), local)
    midnight = midnight.astimezone(UTC)
    visit(api, midnight + timedelta(hours=1), midnight + timedelta(hours=2))
    visit(api, midnight + timedelta(hours=20), midnight + timedelta(hours=21))
    roll_up(api, midnight - timedelta(hours=1))
    # A later run that starts in the middle of that day recomputes it from stored hours.
    roll_up(api, midnight + timedelta(hours=12))

    (day,) = [
        d
        for d in usage(
            api,
            bucket="day",
            **{"from": z(midnight), "to": z(midnight + timedelta(days=1))},
        ).json()["items"]
    ]
    assert day["active_seconds"] == 2 * 3600
    assert day["sessions_started"] == 2


# --- sales by local day -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "zone", ["Asia/Seoul", "Asia/Kathmandu", "America/New_York", "Etc/GMT+5", "ROK"]
)
def test_sales_group_by_the_tenants_local_day_on_every_store(api: Api, zone: str) -> None:
    assert put_settings(api, time_zone=zone).status_code == 200
    session = api.start(kind="kiosk", resource_id="kiosk-1", subject_id=None, client_key="k1")
    base = (datetime.now(UTC) - timedelta(days=2)).replace(hour=0, minute=0, second=0)
    local = ZoneInfo(zone)
    # One sale every 97 minutes across two UTC days: their local days are told by Python.
    instants = [base + timedelta(minutes=97 * n) for n in range(30)]
    for n, at in enumerate(instants):
        sale = {
            "id": f"s{n}",
            "session_id": session["id"],
            "device_id": "kiosk-1",
            "occurred_at": at.isoformat(),
            "currency": "KRW",
            "amounts": {"gross": "100", "discount": "0", "tax": "0", "net": "100"},
            "payment_method": "card",
        }
        stored = api.client.post("/v1/sales", json=sale, headers=api.app)
        assert stored.status_code in (200, 201), stored.text
    expected: dict[str, int] = {}
    for at in instants:
        day = at.astimezone(local).date().isoformat()
        expected[day] = expected.get(day, 0) + 1

    report = api.client.get("/v1/reports/sales", params={"group_by": "day"}, headers=api.admin)

    assert report.status_code == 200, report.text
    assert {r["group"]: r["count"] for r in report.json()["items"]} == expected


@pytest.mark.parametrize(
    "zone",
    ["localtime", "posix/Asia/Seoul", "right/Asia/Seoul"],  # localtime: the machine's own zone
)
def test_a_zone_file_that_is_no_iana_name_is_refused_before_it_reaches_a_store(
    api: Api, zone: str
) -> None:
    assert invalid_fields(put_settings(api, time_zone=zone)) == ["time_zone"]
    assert api.client.get("/v1/settings", headers=api.admin).json()["time_zone"] == "UTC"


# --- monthly quota at a local month boundary ----------------------------------------------------


def register(api: Api, resource_id: str) -> Any:
    return api.client.post(
        "/v1/accounts/mina/resources",
        json={"resource_id": resource_id, "kind": "pdf"},
        headers=api.admin,
    )


def test_the_monthly_quota_starts_again_at_the_tenants_local_month(api: Api) -> None:
    assert put_settings(api, time_zone="Asia/Seoul").status_code == 200
    assert api.client.put("/v1/plans/free", json=FREE, headers=api.admin).status_code in (200, 201)
    # 23:30 on 31 October in Seoul (14:30 UTC), then 00:30 on 1 November (still October in UTC).
    clock = FakeClock(datetime(2026, 10, 31, 14, 30, tzinfo=UTC))
    api.container.outside.clock.override(providers.Object(clock))
    try:
        october = register(api, "pdf-1")
        clock.advance(3600)
        november = register(api, "pdf-2")
        refused = register(api, "pdf-3")
        limits = api.client.get("/v1/accounts/mina/limits", headers=api.admin).json()
    finally:
        api.container.outside.clock.reset_override()

    assert october.status_code == 201, october.text
    assert november.status_code == 201, november.text
    body = assert_error(refused, 402, "quota_exceeded")
    assert body["limits"] == {"resources_per_month": 1, "resources_this_month": 1}
    assert (limits["resources_this_month"], limits["can_register_resource"]) == (1, False)


def test_the_monthly_quota_in_new_york_across_its_own_midnight(api: Api) -> None:
    assert put_settings(api, time_zone="America/New_York").status_code == 200
    assert api.client.put("/v1/plans/free", json=FREE, headers=api.admin).status_code in (200, 201)
    # 23:30 on 30 November in New York is 04:30 UTC on 1 December: still November there.
    clock = FakeClock(datetime(2026, 12, 1, 4, 30, tzinfo=UTC))
    api.container.outside.clock.override(providers.Object(clock))
    try:
        first = register(api, "pdf-1")
        clock.advance(20 * 60)  # 23:50 in New York
        second = register(api, "pdf-2")
        clock.advance(20 * 60)  # 00:10 on 1 December in New York
        third = register(api, "pdf-3")
    finally:
        api.container.outside.clock.reset_override()

    assert first.status_code == 201, first.text
    assert_error(second, 402, "quota_exceeded")
    assert third.status_code == 201, third.text


def zone_change_story(api: Api) -> tuple[Any, Any]:
    """A registration in UTC's November that is New York's October, then the time zone moves to
    New York and another registration comes in New York's November."""
    assert api.client.put("/v1/plans/free", json=FREE, headers=api.admin).status_code in (200, 201)
    # 02:00 UTC on 1 November: November in UTC, still 31 October in New York.
    clock = FakeClock(datetime(2026, 11, 1, 2, 0, tzinfo=UTC))
    api.container.outside.clock.override(providers.Object(clock))
    try:
        first = register(api, "pdf-1")
        assert put_settings(api, time_zone="America/New_York").status_code == 200
        clock.advance(10 * 86400)
        tenant = api.run(lambda: api.container.storage.tenants().get_by_name("acme"))
        calendar = Calendar("America/New_York")
        command = RegisterResourceCommand(tenant.id, "mina", "pdf-2", "pdf", calendar)

        async def registered() -> Any:
            # A bound on the wait: a store that retries for ever fails the test instead.
            return await asyncio.wait_for(
                api.container.use_cases.register_resource()(command), timeout=10
            )

        second = api.run(registered)
    finally:
        api.container.outside.clock.reset_override()
    return first, second


def test_a_registration_after_a_time_zone_change_counts_the_new_zones_month(api: Api) -> None:
    # MongoDB's monthly slots were keyed by the month's label, which names another month in the
    # new zone: every insert collided and the registration retried for ever.
    first, second = zone_change_story(api)

    assert first.status_code == 201, first.text
    assert second.created


# --- the schema ---------------------------------------------------------------------------------


def schemas(api: Api) -> dict[str, Any]:
    return dict(api.client.get("/schema/openapi.json").json()["components"]["schemas"])


@MEMORY_ONLY
def test_the_schema_declares_the_zone_the_dimensions_and_the_bucket_label(api: Api) -> None:
    components = schemas(api)
    body = components["SettingsBody"]["properties"]
    out = components["SettingsOut"]
    bucket = components["UsageBucketOut"]

    assert body["time_zone"]["oneOf"] == [{"type": "string"}]
    assert body["time_zone"]["maxLength"] == 64
    assert body["dimensions"]["oneOf"][0]["type"] == "array"
    assert out["properties"]["time_zone"] == {"type": "string"}
    assert out["properties"]["dimensions"] == {"items": {"type": "string"}, "type": "array"}
    assert {"time_zone", "dimensions"} <= set(out["required"])
    assert bucket["properties"]["label"] == {"type": "string"}
    assert {"label", "start", "end"} <= set(bucket["required"])


@MEMORY_ONLY
def test_the_schema_bounds_dimensions_as_the_service_does(api: Api) -> None:
    assert schemas(api)["SettingsBody"]["properties"]["dimensions"]["maxItems"] == 8
