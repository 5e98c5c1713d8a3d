"""The usage report and the cost model over HTTP: admin only, every bad parameter a 422 naming
it, and the figures of a rolled-up session."""

from datetime import UTC, datetime, timedelta

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

    assert usage(bucket="week") == ["bucket"]
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
