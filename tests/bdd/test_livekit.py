"""Steps of features/livekit.feature."""

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from application.livekit.reconcile_livekit import ReconcileLiveKitCommand
from tests.app_client import Api
from tests.fake_livekit import FakeLiveKit, fake_livekit
from tests.fakes import FakeClock
from tests.livekit_server import LiveKitServer

scenarios("livekit.feature")

NOW = datetime.now(UTC).replace(microsecond=0)
Webhook = tuple[str, dict[str, str]]


@pytest.fixture
def webhooks() -> list[Webhook]:
    """What the LiveKit server has sent so far, in the order it sent it."""
    return []


@pytest.fixture
def refused() -> list[Any]:
    return []


def room(name: str) -> LiveKitServer:
    return LiveKitServer(room=name)


def deliver(api: Api, webhook: Webhook) -> Any:
    raw, headers = webhook
    return api.client.post("/v1/webhooks/livekit", content=raw, headers=headers)


def stays(api: Api, room_name: str) -> list[dict[str, Any]]:
    found = api.client.get(
        "/v1/sessions", params={"resource_id": room_name, "limit": 100}, headers=api.admin
    )
    return list(found.json()["items"])


@given(parsers.parse('{count:d} participants join room "{name}" over the first 10 minutes'))
def many_join(webhooks: list[Webhook], count: int, name: str) -> None:
    day = NOW - timedelta(hours=6)
    for n in range(count):
        webhooks.append(room(name).joined(f"p{n}", day + timedelta(seconds=n * 600 // count)))


@given(parsers.parse("{count:d} of them share their screen for {minutes:d} minutes"))
def share_screens(webhooks: list[Webhook], count: int, minutes: int) -> None:
    for raw, _ in list(webhooks)[:count]:
        body = json.loads(raw)
        joined = datetime.fromtimestamp(int(body["createdAt"]), UTC)
        who, server = body["participant"]["identity"], room(body["room"]["name"])
        sid, start = f"TR_screen_{who}", joined + timedelta(hours=1)
        webhooks.append(server.track("track_published", who, joined, sid, "SCREEN_SHARE", start))
        end = start + timedelta(minutes=minutes)
        webhooks.append(server.track("track_unpublished", who, joined, sid, "SCREEN_SHARE", end))


@given(parsers.parse('"{who}" turned his camera on when he joined'))
def camera_on(api: Api, who: str) -> None:
    joined = NOW - timedelta(hours=1)
    webhook = room("day-1").track("track_published", who, joined, f"TR_cam_{who}", "CAMERA", joined)
    assert deliver(api, webhook).status_code == 200


@then(parsers.parse('the stays in room "{name}" add up to {minutes:d} minutes of {what}'))
def track_minutes(api: Api, name: str, minutes: int, what: str) -> None:
    meter = {"screen share": "screen_share.seconds", "video": "video.seconds"}[what]
    assert sum(int(s["usage"].get(meter, 0)) for s in stays(api, name)) == minutes * 60


@given(parsers.parse("every participant leaves after {hours:d} hours"))
def all_leave(webhooks: list[Webhook], hours: int) -> None:
    for raw, _ in list(webhooks):
        body = json.loads(raw)
        if body["event"] != "participant_joined":
            continue
        joined = datetime.fromtimestamp(int(body["createdAt"]), UTC)
        identity = body["participant"]["identity"]
        server = room(body["room"]["name"])
        webhooks.append(server.left(identity, joined, joined + timedelta(hours=hours)))


@when("each webhook arrives twice and the day's webhooks arrive in reverse order")
def reversed_twice(api: Api, webhooks: list[Webhook]) -> None:
    for webhook in reversed(webhooks):
        for _ in range(2):
            assert deliver(api, webhook).status_code == 200


@given(
    parsers.parse(
        'participant "{who}" joined room "{name}" {minutes:d} minutes ago but that webhook was dropped'
    )
)
def dropped_join(webhooks: list[Webhook], who: str, name: str, minutes: int) -> None:
    joined = NOW - timedelta(minutes=minutes)
    webhooks.append(room(name).left(who, joined, NOW))


@when(parsers.parse('the webhook saying "{who}" left room "{name}" now arrives'))
def late_leave(api: Api, webhooks: list[Webhook], who: str, name: str) -> None:
    assert deliver(api, webhooks[-1]).status_code == 200


@given(
    parsers.parse('"{who}" left room "{name}" {minutes:d} minutes ago but that webhook is delayed')
)
def delayed_leave(webhooks: list[Webhook], who: str, name: str, minutes: int) -> None:
    webhooks.append(
        room(name).left(who, NOW - timedelta(hours=1), NOW - timedelta(minutes=minutes))
    )


@when("the delayed webhook arrives")
def delayed_arrives(api: Api, webhooks: list[Webhook]) -> None:
    assert deliver(api, webhooks.pop()).status_code == 200


@given(parsers.parse('participants "{first}" and "{second}" joined room "{name}" an hour ago'))
def two_join(api: Api, first: str, second: str, name: str) -> None:
    for who in (first, second):
        assert deliver(api, room(name).joined(who, NOW - timedelta(hours=1))).status_code == 200


@when(parsers.parse('room "{name}" finishes'))
def room_finishes(api: Api, name: str) -> None:
    assert deliver(api, room(name).webhook("room_finished", NOW)).status_code == 200


@when(parsers.parse('a webhook signed with another secret says "{who}" joined room "{name}"'))
def forged(api: Api, refused: list[Any], who: str, name: str) -> None:
    forger = LiveKitServer(secret="someone-elses-secret-of-enough-length", room=name)
    refused.append(deliver(api, forger.joined(who, NOW)))


@then("it is refused as unauthorized")
def is_refused(refused: list[Any]) -> None:
    assert refused[-1].status_code == 401


@then(parsers.parse('room "{name}" has {count:d} stays, all completed'))
def room_has(api: Api, name: str, count: int) -> None:
    found = stays(api, name)
    assert len(found) == count
    assert all(s["status"] == "completed" for s in found)


@then(parsers.parse('every stay in room "{name}" lasted {hours:d} hours'))
def every_stay_lasted(api: Api, name: str, hours: int) -> None:
    assert {s["duration_seconds"] for s in stays(api, name)} == {hours * 3600}


@then(parsers.parse('"{who}" stayed in room "{name}" for {minutes:d} minutes'))
def stayed(api: Api, who: str, name: str, minutes: int) -> None:
    (stay,) = [s for s in stays(api, name) if s["subject_id"] == who]
    assert stay["duration_seconds"] == minutes * 60


@then(parsers.parse('the watch time of room "{name}" is {hours:d} participant-hours'))
def watch_time(api: Api, name: str, hours: int) -> None:
    report = api.client.get(
        "/v1/reports/watch-time", params={"resource_id": name}, headers=api.admin
    ).json()
    assert sum(row["total_seconds"] for row in report["items"]) == hours * 3600


@then(parsers.parse('the events of "{who}"\'s stay say when his camera went on and off'))
def camera_events(api: Api, who: str) -> None:
    (stay,) = [s for s in stays(api, "day-1") if s["subject_id"] == who]
    found = api.client.get(f"/v1/sessions/{stay['id']}/events", headers=api.admin).json()
    turned = [(e["type"], e["at"]) for e in found["items"]]
    on, off = stay["started_at"], stay["ended_at"]
    assert turned == [("video_start", on), ("video_end", off)]


@pytest.fixture
def livekit_server() -> Iterator[FakeLiveKit]:
    """The bootcamp's LiveKit server as reconciliation asks it (its RoomService API)."""
    with fake_livekit() as server:
        yield server


@given("the bootcamp's LiveKit server answers at a URL sessionmeter knows")
def server_url(api: Api, livekit_server: FakeLiveKit) -> None:
    response = api.client.put(
        f"/v1/livekit/accounts/{livekit_server.key}",
        json={"url": livekit_server.url},
        headers=api.admin,
    )
    assert response.status_code == 200, response.text


@given(parsers.parse('the LiveKit server lists "{first}" and "{second}" in room "{name}"'))
def listed(livekit_server: FakeLiveKit, first: str, second: str, name: str) -> None:
    for who in (first, second):
        livekit_server.join(name, f"PA_{who}", who)


@given(parsers.parse('"{who}" leaves room "{name}" but that webhook is dropped'))
def left_unsaid(livekit_server: FakeLiveKit, who: str, name: str) -> None:
    livekit_server.leave(name, f"PA_{who}")


@given("sessionmeter asks the LiveKit server who is in its rooms")
@when("sessionmeter asks the LiveKit server who is in its rooms")
def reconcile(api: Api, clock: FakeClock) -> None:
    done = api.run(lambda: api.container.jobs.reconcile_livekit()(ReconcileLiveKitCommand()))
    assert done.problems == []


@then(parsers.parse('"{who}"\'s stay is still active, last seen just now'))
def still_there(api: Api, clock: FakeClock, who: str) -> None:
    (stay,) = [s for s in stays(api, "day-1") if s["subject_id"] == who]
    assert (stay["status"], stay["last_seen_at"]) == ("active", _instant(clock.now()))


@then(parsers.parse('"{who}"\'s stay ended completed {minutes:d} minutes ago, reconciled'))
def reconciled(api: Api, clock: FakeClock, who: str, minutes: int) -> None:
    (stay,) = [s for s in stays(api, "day-1") if s["subject_id"] == who]
    ended = _instant(clock.now() - timedelta(minutes=minutes))
    assert (stay["status"], stay["ended_at"], stay["exit_reason"]) == (
        "completed",
        ended,
        "reconciled",
    )


def _instant(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")
