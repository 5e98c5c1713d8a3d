"""Steps of features/rollups.feature."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from application.rollups.roll_up_usage import RollUpUsageCommand
from tests.app_client import Api
from tests.bdd.test_livekit import Webhook, deliver, room

scenarios("rollups.feature")

DAY = (datetime.now(UTC) - timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
GB = 10**9


def clock_time(hhmm: str) -> datetime:
    hours, minutes = map(int, hhmm.split(":"))
    return DAY + timedelta(hours=hours, minutes=minutes)


@pytest.fixture
def day() -> dict[str, Any]:
    """The bootcamp's day as the LiveKit server saw it: who was in the room when."""
    return {"webhooks": [], "stays": {}}


@given(
    parsers.parse(
        'yesterday {count:d} participants joined room "{name}" at {start} with their cameras on'
    )
)
def join_with_cameras(day: dict[str, Any], count: int, name: str, start: str) -> None:
    server, joined = room(name), clock_time(start)
    day["room"] = name
    for n in range(count):
        who = f"p{n}"
        day["stays"][who] = (joined, None)
        day["webhooks"].append(server.joined(who, joined))
        day["webhooks"].append(
            server.track("track_published", who, joined, f"TR_cam_{who}", "CAMERA", joined)
        )


@given(parsers.parse("{count:d} of them left at {first} and the others at {second}"))
def leave(day: dict[str, Any], count: int, first: str, second: str) -> None:
    server = room(day["room"])
    for n, (who, (joined, _)) in enumerate(sorted(day["stays"].items())):
        left = clock_time(first if n < count else second)
        day["stays"][who] = (joined, left)
        # Leaving ends the camera too: no track_unpublished is sent for it.
        day["webhooks"].append(server.left(who, joined, left))


@given(parsers.parse("{count:d} of them shared their screen from {start} to {end}"))
def share_screens(day: dict[str, Any], count: int, start: str, end: str) -> None:
    server = room(day["room"])
    for who, (joined, _) in sorted(day["stays"].items())[:count]:
        sid = f"TR_screen_{who}"
        for event, at in (("track_published", start), ("track_unpublished", end)):
            day["webhooks"].append(
                server.track(event, who, joined, sid, "SCREEN_SHARE", clock_time(at))
            )


@given("the LiveKit server's webhooks arrived twice and out of order")
def arrive_twice_reversed(api: Api, day: dict[str, Any]) -> None:
    webhook: Webhook
    for webhook in reversed(day["webhooks"]):
        for _ in range(2):
            assert deliver(api, webhook).status_code == 200


@given(
    parsers.parse(
        "the media server reported every 10 minutes, sending {gb:g} GB per video-minute and "
        "using {cpu:d} % CPU per participant"
    )
)
def snapshots(api: Api, day: dict[str, Any], gb: float, cpu: int) -> None:
    def in_room(at: datetime) -> int:
        return sum(1 for joined, left in day["stays"].values() if joined <= at < left)

    # Each snapshot just before the minute, so that a reading's traffic falls in its own hour.
    first = clock_time("09:00") - timedelta(milliseconds=1)
    readings, total, previous = [], 0.0, first
    for n in range(32):
        at = first + timedelta(minutes=10 * n)
        # Who was in the room during the ten minutes since the previous reading.
        watching = in_room(previous + timedelta(milliseconds=1))
        total += gb * GB * watching * (at - previous).total_seconds() / 60
        users = in_room(at)
        readings.append(
            {
                "source": "lk-1",
                "at": at.isoformat(),
                "cpu_percent": cpu * users,
                "memory_percent": 40,
                "memory_mb": 2048,
                "traffic_bytes_total": round(total),
                "concurrent_users": users,
                "active_rooms": 1 if users else 0,
            }
        )
        previous = at
    response = api.client.post(
        "/v1/snapshots/batch", json={"snapshots": readings}, headers=api.admin
    )
    assert response.status_code == 200, response.text


@when("the operator rolls up the usage since yesterday morning")
def roll_up(api: Api) -> None:
    command = RollUpUsageCommand("acme", since=DAY)
    api.run(lambda: api.container.jobs.roll_up_usage()(command))


def usage(api: Api, bucket: str, **params: Any) -> list[dict[str, Any]]:
    response = api.client.get(
        "/v1/reports/usage",
        params={"bucket": bucket, "from": DAY.isoformat(), **params},
        headers=api.admin,
    )
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def yesterday(api: Api, **params: Any) -> dict[str, Any]:
    (found,) = [
        d for d in usage(api, "day", **params) if d["start"].startswith(DAY.date().isoformat())
    ]
    return found


@then(
    parsers.parse(
        "yesterday's rollup counts {started:d} sessions started and {ended:d} ended in room "
        '"{name}"'
    )
)
def sessions_counted(api: Api, started: int, ended: int, name: str) -> None:
    figures = yesterday(api, kind="livekit", resource_id=name)
    assert (figures["sessions_started"], figures["sessions_ended"]) == (started, ended)


@then(
    parsers.parse(
        "yesterday's rollup counts {hours:d} participant-hours, {video:d} video-minutes and "
        "{screen:d} screen-share minutes"
    )
)
def time_counted(api: Api, hours: int, video: int, screen: int) -> None:
    figures = yesterday(api)
    assert figures["active_seconds"] == hours * 3600
    assert (figures["video_minutes"], figures["screen_share_minutes"]) == (video, screen)


@then(
    parsers.parse("yesterday's traffic was {gb:d} GB and the peak was {users:d} concurrent users")
)
def load_counted(api: Api, gb: int, users: int) -> None:
    figures = yesterday(api)
    assert figures["traffic_gb"] == pytest.approx(gb, abs=0.01)
    assert figures["peak_concurrent_users"] == users


@then(
    parsers.parse(
        "the hour from {start} counts {video:d} video-minutes and {screen:d} screen-share minutes"
    )
)
def hour_counted(api: Api, start: str, video: int, screen: int) -> None:
    at = clock_time(start)
    (hour,) = usage(
        api, "hour", **{"from": at.isoformat(), "to": (at + timedelta(hours=1)).isoformat()}
    )
    assert (hour["video_minutes"], hour["screen_share_minutes"]) == (video, screen)


@then("rolling up again changes none of these figures")
def idempotent(api: Api) -> None:
    before = usage(api, "hour"), usage(api, "day")
    roll_up(api)
    assert (usage(api, "hour"), usage(api, "day")) == before


@pytest.fixture
def answer() -> dict[str, Any]:
    return {}


@when(
    parsers.parse(
        "an admin asks the cost model what {users:d} users watching {hours:d} hours a day for "
        "{days:d} days need"
    )
)
def ask_for_a_plan(api: Api, answer: dict[str, Any], users: int, hours: int, days: int) -> None:
    params: dict[str, str | int] = {
        "from": DAY.isoformat(),
        "users": users,
        "hours_per_day": hours,
        "days": days,
    }
    response = api.client.get("/v1/reports/cost-model", params=params, headers=api.admin)
    assert response.status_code == 200, response.text
    answer.update(response.json())


@when(parsers.parse("an admin asks the cost model about the hour from {start} only"))
def ask_about_an_hour(api: Api, answer: dict[str, Any], start: str) -> None:
    at = clock_time(start)
    params = {"from": at.isoformat(), "to": (at + timedelta(hours=1)).isoformat()}
    response = api.client.get("/v1/reports/cost-model", params=params, headers=api.admin)
    assert response.status_code == 200, response.text
    answer.update(response.json())


@then(
    parsers.parse(
        "the model finds {gb:g} GB per video-minute over {hours:d} hours, a near-perfect fit"
    )
)
def per_video_minute(answer: dict[str, Any], gb: float, hours: int) -> None:
    fit = answer["traffic_gb_per_video_minute"]
    assert fit["value"] == pytest.approx(gb, rel=1e-4)
    assert fit["hours_used"] == hours and fit["r_squared"] > 0.999


@then(parsers.parse("{cpu:d} % CPU per concurrent user"))
def per_user(answer: dict[str, Any], cpu: int) -> None:
    assert answer["cpu_percent_per_concurrent_user"]["value"] == pytest.approx(cpu)


@then(
    parsers.parse("it predicts {minutes} video-minutes and about {tb:g} TB of traffic, showing how")
)
def predicted(answer: dict[str, Any], minutes: str, tb: float) -> None:
    prediction = answer["prediction"]
    assert prediction["video_minutes"] == int(minutes.replace(",", ""))
    assert round(prediction["traffic_tb"], 1) == tb
    assert f"= {minutes} video-minutes" in prediction["arithmetic"][0]
    assert f"~ {tb} TB" in prediction["arithmetic"][0]


@then(
    parsers.parse(
        "the model declines to fit GB per video-minute, saying it needs at least {hours:d} hours"
    )
)
def declined(answer: dict[str, Any], hours: int) -> None:
    fit = answer["traffic_gb_per_video_minute"]
    assert fit["value"] is None
    assert f"at least {hours} hours" in fit["detail"]
