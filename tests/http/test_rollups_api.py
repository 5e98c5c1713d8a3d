"""The usage report and the cost model over HTTP: admin only, every bad parameter a 422 naming
it, and the figures of a rolled-up session."""

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from application.rollups.roll_up_usage import RollUpUsageCommand
from tests.app_client import Api
from tests.http.envelope import assert_error, invalid_fields

# Yesterday's: within the late-data window and the retention of events, whenever the test runs.
HOUR = (datetime.now(UTC) - timedelta(days=1)).replace(minute=0, second=0, microsecond=0)


def test_usage_and_the_cost_model_need_an_admin_key(api: Api) -> None:
    for path in ("/v1/reports/usage", "/v1/reports/cost-model"):
        assert_error(api.client.get(path, headers=api.app), 403, "forbidden")
        assert_error(api.client.get(path), 401, "unauthorized")


def test_bad_windows_buckets_and_plans_are_422_naming_the_parameter(api: Api) -> None:
    def usage(**params: str | int) -> list[str]:
        return invalid_fields(api.client.get("/v1/reports/usage", params=params, headers=api.admin))

    def cost_model(**params: str | int) -> list[str]:
        return invalid_fields(
            api.client.get("/v1/reports/cost-model", params=params, headers=api.admin)
        )

    assert usage(bucket="fortnight") == ["bucket"]
    assert usage(bucket="week", **{"from": "2000-01-03T00:00:00Z"}) == ["to"]  # 1,000 weeks
    assert usage(**{"from": "2026-11-24T00:00:00"}) == ["from"]
    assert usage(**{"from": "2026-11-24T00:00:00Z", "to": "2026-11-23T00:00:00Z"}) == ["from"]
    assert usage(**{"from": "2026-01-01T00:00:00Z", "to": "2026-11-24T00:00:00Z"}) == ["to"]
    assert cost_model(users=50) == ["users"]
    assert cost_model(users=0, hours_per_day=5, days=22) == ["users"]
    assert cost_model(users=50, hours_per_day=25, days=22) == ["hours_per_day"]
    assert cost_model(users="many", hours_per_day=5, days=22) == ["users"]


def test_a_rolled_up_session_shows_in_its_hours_and_day(api: Api) -> None:
    session = api.start(started_at=HOUR.isoformat(), resource_id="webinar-9")
    exit_at = HOUR + timedelta(minutes=90)
    api.client.post(
        f"/v1/sessions/{session['id']}/exit",
        json={"at": exit_at.isoformat(), "usage": {"cost_usd": "0.10"}},
        headers=api.app,
    )
    command = RollUpUsageCommand("acme", since=HOUR)
    api.run(lambda: api.container.jobs.roll_up_usage()(command))
    window = {"from": HOUR.isoformat(), "to": (HOUR + timedelta(hours=3)).isoformat()}

    hours = api.client.get(
        "/v1/reports/usage", params={"bucket": "hour", **window}, headers=api.admin
    ).json()
    other = api.client.get(
        "/v1/reports/usage",
        params={"bucket": "hour", "resource_id": "webinar-1", **window},
        headers=api.admin,
    ).json()

    assert [h["start"] for h in hours["items"]] == [
        f"{HOUR + timedelta(hours=n):%Y-%m-%dT%H:%M:%SZ}" for n in range(3)
    ]
    first, second, third = hours["items"]
    assert (first["sessions_started"], first["active_seconds"], first["meters"]) == (1, 3600, {})
    assert (second["sessions_ended"], second["active_seconds"]) == (1, 1800)
    assert second["meters"] == {"cost_usd": "0.1"}
    assert third["active_seconds"] == 0 and third["cpu_percent_avg"] is None
    assert [h["active_seconds"] for h in other["items"]] == [0, 0, 0]


def test_a_tenant_in_seoul_reads_its_own_days_weeks_and_months(api: Api) -> None:
    settings = api.client.put("/v1/settings", json={"time_zone": "Asia/Seoul"}, headers=api.admin)
    # Late in the evening in Seoul two days ago: the session runs past its midnight.
    seoul = ZoneInfo("Asia/Seoul")
    evening = (datetime.now(seoul) - timedelta(days=2)).replace(
        hour=23, minute=0, second=0, microsecond=0
    )
    session = api.start(started_at=evening.isoformat())
    api.client.post(
        f"/v1/sessions/{session['id']}/exit",
        json={"at": (evening + timedelta(hours=2)).isoformat()},
        headers=api.app,
    )
    api.run(lambda: api.container.jobs.roll_up_usage()(RollUpUsageCommand("acme", since=evening)))

    def used(bucket: str) -> list[tuple[str, str, float]]:
        report = api.client.get("/v1/reports/usage", params={"bucket": bucket}, headers=api.admin)
        assert report.status_code == 200, report.text
        items = report.json()["items"]
        return [(b["label"], b["start"], b["active_seconds"]) for b in items if b["active_seconds"]]

    midnight = evening.replace(hour=0) + timedelta(days=1)
    assert settings.json()["time_zone"] == "Asia/Seoul"
    assert used("day") == [
        (
            f"{evening:%Y-%m-%d}",
            f"{evening.replace(hour=0).astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}",
            3600,
        ),
        (f"{midnight:%Y-%m-%d}", f"{midnight.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}", 3600),
    ]
    weeks = {f"{d:%G-W%V}" for d in (evening, midnight)}
    assert [label for label, _, _ in used("week")] == sorted(weeks)
    assert sum(seconds for _, _, seconds in used("month")) == 7200
    assert [label for label, _, _ in used("month")] == sorted(
        {f"{d:%Y-%m}" for d in (evening, midnight)}
    )


def test_an_unknown_zone_or_too_many_dimensions_are_422_naming_the_setting(api: Api) -> None:
    def settings(**body: object) -> list[str]:
        return invalid_fields(api.client.put("/v1/settings", json=body, headers=api.admin))

    assert settings(time_zone="Mars/Olympus") == ["time_zone"]
    assert settings(time_zone="Asia/Seoul/../../etc") == ["time_zone"]
    assert settings(dimensions=[f"d{n}" for n in range(9)]) == ["dimensions"]
    assert settings(dimensions=["store id"]) == ["dimensions"]
    kept = api.client.get("/v1/settings", headers=api.admin).json()
    assert (kept["time_zone"], kept["dimensions"]) == ("UTC", [])


def test_usage_is_grouped_and_filtered_by_declared_dimensions_only(api: Api) -> None:
    api.client.put("/v1/settings", json={"dimensions": ["store_id"]}, headers=api.admin)
    for store in ("S1", "S1", "S2"):
        session = api.start(started_at=HOUR.isoformat(), attributes={"store_id": store})
        api.client.post(
            f"/v1/sessions/{session['id']}/exit",
            json={"at": (HOUR + timedelta(minutes=30)).isoformat()},
            headers=api.app,
        )
    api.run(lambda: api.container.jobs.roll_up_usage()(RollUpUsageCommand("acme", since=HOUR)))
    window = {"from": HOUR.isoformat(), "to": (HOUR + timedelta(hours=1)).isoformat()}

    def usage(**params: str) -> Any:
        return api.client.get(
            "/v1/reports/usage", params={"bucket": "hour", **window, **params}, headers=api.admin
        )

    grouped = usage(group_by="attributes.store_id").json()["items"]
    s2 = usage(**{"attributes.store_id": "S2"}).json()["items"]

    assert [(b["group"], b["sessions_started"], b["active_seconds"]) for b in grouped] == [
        ("S1", 2, 3600),
        ("S2", 1, 1800),
    ]
    assert [(b["group"], b["sessions_started"]) for b in s2] == [(None, 1)]
    refused = usage(group_by="attributes.country")
    assert invalid_fields(refused) == ["group_by"]
    assert "store_id" in refused.text
    assert invalid_fields(usage(**{"attributes.country": "KR"})) == ["attributes.country"]
    assert invalid_fields(usage(group_by="store_id")) == ["group_by"]


def test_the_daily_summary_reads_a_local_day_per_resource_or_store(api: Api) -> None:
    settings = {"time_zone": "Asia/Seoul", "dimensions": ["store_id"]}
    assert api.client.put("/v1/settings", json=settings, headers=api.admin).status_code == 200
    seoul = ZoneInfo("Asia/Seoul")
    noon = (datetime.now(seoul) - timedelta(days=2)).replace(hour=12, minute=0, second=0)
    for minutes, status, store in (
        (10, "completed", "S1"),
        (30, "abandoned", "S1"),
        (20, "completed", "S2"),
    ):
        session = api.start(started_at=noon.isoformat(), attributes={"store_id": store})
        api.client.post(
            f"/v1/sessions/{session['id']}/exit",
            json={"at": (noon + timedelta(minutes=minutes)).isoformat(), "status": status},
            headers=api.app,
        )
    sale = {
        "id": "sale-1",
        "session_id": session["id"],
        "device_id": "kiosk-1",
        "occurred_at": (noon + timedelta(minutes=5)).isoformat(),
        "currency": "KRW",
        "amounts": {"gross": "20000", "discount": "0", "tax": "0", "net": "20000"},
        "payment_method": "card",
        "status": "completed",
    }
    assert api.client.post("/v1/sales", json=sale, headers=api.ingest).status_code == 201
    api.run(lambda: api.container.jobs.roll_up_usage()(RollUpUsageCommand("acme", since=noon)))

    def daily(**params: str) -> Any:
        return api.client.get("/v1/reports/daily", params=params, headers=api.admin)

    by_store = daily(date=f"{noon:%Y-%m-%d}", group_by="attributes.store_id")
    by_webinar = daily(date=f"{noon:%Y-%m-%d}").json()

    assert by_store.status_code == 200, by_store.text
    body = by_store.json()
    assert (body["date"], body["start"]) == (
        f"{noon:%Y-%m-%d}",
        f"{noon.replace(hour=0).astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}",
    )
    assert [
        (
            g["group"],
            g["completed"],
            g["abandoned"],
            g["completion_rate"],
            g["average_duration_seconds"],
        )
        for g in body["items"]
    ] == [("S1", 1, 1, 0.5, 1200.0), ("S2", 1, 0, 1.0, 1200.0)]
    assert [(g["group"], g["errors"], g["sales"]) for g in body["items"]] == [
        ("S1", {"count": 0, "fatal": 0}, {}),
        ("S2", {"count": 0, "fatal": 0}, {"KRW": {"count": 1, "net": "20000"}}),
    ]
    assert [(g["group"], g["sessions_started"]) for g in by_webinar["items"]] == [("webinar-1", 3)]
    assert daily().json()["date"] == f"{datetime.now(seoul):%Y-%m-%d}"  # today, in Seoul
    assert invalid_fields(daily(date="2026-02-30")) == ["date"]
    assert invalid_fields(daily(group_by="attributes.country")) == ["group_by"]
    assert invalid_fields(daily(group_by="store_id")) == ["group_by"]
    assert_error(api.client.get("/v1/reports/daily", headers=api.app), 403, "forbidden")
