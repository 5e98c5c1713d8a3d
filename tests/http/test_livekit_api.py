"""POST /v1/webhooks/livekit: signed webhooks become sessions, exactly once, in any order."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest

from application.livekit.add_livekit_account import AddLiveKitAccountCommand
from domain.errors import Conflict
from tests.app_client import Api
from tests.http.envelope import assert_error, invalid_fields
from tests.livekit_server import LiveKitServer

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def deliver(api: Api, webhook: tuple[str, dict[str, str]]) -> Any:
    raw, headers = webhook
    return api.client.post("/v1/webhooks/livekit", content=raw, headers=headers)


def stays(api: Api) -> list[dict[str, Any]]:
    found = api.client.get("/v1/sessions", params={"kind": "livekit"}, headers=api.admin)
    return list(found.json()["items"])


def test_a_participant_who_joins_and_leaves_is_one_session_at_the_servers_times(
    api: Api, livekit: LiveKitServer
) -> None:
    joined = deliver(api, livekit.joined("ana", T0))
    left = deliver(api, livekit.left("ana", T0, T0 + timedelta(minutes=50)))

    assert joined.status_code == 200 and left.status_code == 200
    (stay,) = stays(api)
    assert (stay["kind"], stay["resource_id"], stay["subject_id"]) == ("livekit", "bootcamp", "ana")
    assert stay["status"] == "completed" and stay["duration_seconds"] == 3000


def test_webhooks_delivered_twice_and_out_of_order_count_once(
    api: Api, livekit: LiveKitServer
) -> None:
    joined = livekit.joined("ana", T0)
    left = livekit.left("ana", T0, T0 + timedelta(minutes=20))

    for webhook in (left, left, joined, joined):
        assert deliver(api, webhook).status_code == 200

    (stay,) = stays(api)
    assert stay["status"] == "completed" and stay["duration_seconds"] == 1200


def test_a_finished_room_closes_every_stay_still_open_in_it(
    api: Api, livekit: LiveKitServer
) -> None:
    for n, name in enumerate(("ana", "ben", "cy")):
        deliver(api, livekit.joined(name, T0 + timedelta(minutes=n)))
    deliver(api, livekit.left("ben", T0 + timedelta(minutes=1), T0 + timedelta(minutes=10)))

    deliver(api, livekit.webhook("room_finished", T0 + timedelta(minutes=30)))

    ended = {s["subject_id"]: s["ended_at"] for s in stays(api)}
    assert all(s["status"] == "completed" for s in stays(api))
    assert (
        ended["ana"]
        == ended["cy"]
        == (T0 + timedelta(minutes=30)).isoformat().replace("+00:00", "Z")
    )


def test_published_tracks_add_video_screen_share_and_audio_seconds_once(
    api: Api, livekit: LiveKitServer
) -> None:
    def minute(n: int) -> datetime:
        return T0 + timedelta(minutes=n)

    camera = ("TR_cam", "CAMERA")
    screen = ("TR_screen", "SCREEN_SHARE")
    webhooks = [
        livekit.joined("ana", T0),
        livekit.track("track_published", "ana", T0, *camera, minute(1)),
        livekit.track("track_unpublished", "ana", T0, *screen, minute(25)),  # before its publish
        livekit.track("track_published", "ana", T0, *screen, minute(20)),
        livekit.track("track_published", "ana", T0, "TR_mic", "MICROPHONE", minute(2)),
        livekit.track("track_unpublished", "ana", T0, *camera, minute(11)),
        # the microphone is still on when ana leaves: it ends with her stay
        livekit.left("ana", T0, minute(30)),
    ]
    for webhook in webhooks + webhooks:  # and every webhook a second time
        assert deliver(api, webhook).status_code == 200

    (stay,) = stays(api)
    assert stay["usage"] == {
        "video.seconds": 600,
        "screen_share.seconds": 300,
        "audio.seconds": 1680,
    }


@pytest.mark.parametrize(
    "tamper",
    ["no token", "other secret", "other body", "unknown key", "expired", "garbage"],
)
def test_a_webhook_whose_signature_does_not_hold_is_401_and_records_nothing(
    api: Api, livekit: LiveKitServer, tamper: str
) -> None:
    raw, headers = livekit.joined("mallory", T0)
    if tamper == "no token":
        headers.pop("Authorization")
    elif tamper == "other secret":
        headers = LiveKitServer(secret="not-the-registered-secret-but-long-enough").headers(raw)
    elif tamper == "other body":
        raw = raw.replace("mallory", "mallory2")
    elif tamper == "unknown key":
        headers = LiveKitServer(key="APIunknown").headers(raw)
    elif tamper == "expired":
        claims = jwt.decode(headers["Authorization"], options={"verify_signature": False})
        claims["exp"] = int((datetime.now(UTC) - timedelta(minutes=5)).timestamp())
        headers["Authorization"] = jwt.encode(claims, livekit.secret, algorithm="HS256")
    else:
        headers["Authorization"] = "not.a.jwt"

    refused = api.client.post("/v1/webhooks/livekit", content=raw, headers=headers)

    assert_error(refused, 401, "unauthorized")
    assert stays(api) == []


@pytest.mark.parametrize("seconds", [2**63 - 1, -(2**63), 253_402_300_800])  # … year 10000
@pytest.mark.parametrize("field", ["createdAt", "participant.joinedAt"])
def test_a_signed_webhook_dated_past_the_calendar_is_invalid_not_a_500(
    api: Api, livekit: LiveKitServer, field: str, seconds: int
) -> None:
    body = json.loads(livekit.joined("ana", T0)[0])
    if field == "createdAt":
        body["createdAt"] = str(seconds)
    else:
        body["participant"]["joinedAt"] = str(seconds)
    raw = json.dumps(body)

    refused = api.client.post("/v1/webhooks/livekit", content=raw, headers=livekit.headers(raw))

    assert invalid_fields(refused) == [field]
    assert stays(api) == []


def test_a_livekit_key_belongs_to_one_tenant(api: Api, livekit: LiveKitServer) -> None:
    command = AddLiveKitAccountCommand("globex", livekit.key, "x" * 40)
    with pytest.raises(Conflict):
        api.run(lambda: api.container.use_cases.add_livekit_account()(command))


def put_url(api: Api, key: str, body: Any, headers: dict[str, str] | None = None) -> Any:
    return api.client.put(f"/v1/livekit/accounts/{key}", json=body, headers=headers or api.admin)


def test_an_admin_sets_and_removes_the_url_of_its_livekit_server(
    api: Api, livekit: LiveKitServer
) -> None:
    set_ = put_url(api, livekit.key, {"url": "https://lk.example.com"})

    assert set_.status_code == 200, set_.text
    assert set_.json() == {"api_key": livekit.key, "url": "https://lk.example.com"}  # no secret
    stored = api.run(lambda: api.container.storage.livekit_accounts().get(livekit.key))
    assert (stored.url, stored.api_secret) == ("https://lk.example.com", livekit.secret)
    removed = put_url(api, livekit.key, {"url": None})
    assert removed.json() == {"api_key": livekit.key, "url": None}


def test_a_url_is_set_only_by_an_admin_on_its_own_key_and_only_a_valid_one(
    api: Api, livekit: LiveKitServer
) -> None:
    command = AddLiveKitAccountCommand("globex", "APIglobex", "x" * 40)
    api.run(lambda: api.container.use_cases.add_livekit_account()(command))
    url = {"url": "https://lk.example.com"}

    assert_error(put_url(api, "APIglobex", url), 404, "not_found")
    assert_error(put_url(api, "APIunknown", url), 404, "not_found")
    assert_error(put_url(api, livekit.key, url, api.app), 403, "forbidden")
    assert invalid_fields(put_url(api, livekit.key, {"url": "wss://lk.example.com"})) == ["url"]
    assert invalid_fields(put_url(api, livekit.key, {"url": "x" * 501})) == ["url"]
    assert invalid_fields(put_url(api, livekit.key, {})) == ["url"]
    assert invalid_fields(put_url(api, livekit.key, {"url": 7})) == ["url"]
    globex = api.run(lambda: api.container.storage.livekit_accounts().get("APIglobex"))
    assert globex.url is None


def test_the_openapi_schema_documents_setting_a_livekit_url(api: Api) -> None:
    schema = api.client.get("/schema/openapi.json").json()

    operation = schema["paths"]["/v1/livekit/accounts/{api_key}"]["put"]
    assert {"200", "401", "403", "404", "422"} <= set(operation["responses"])
    assert "requestBody" in operation


def test_track_seconds_that_reach_a_charged_stay_late_are_charged_once(
    api: Api, livekit: LiveKitServer
) -> None:
    """LiveKit reorders webhooks: a camera's `published` arriving after the stay's `left`."""
    rate = {"credits_per_minute": 1, "meter_rates": {"video.seconds": {"per": 60, "credits": 2}}}
    assert api.client.put("/v1/rates/livekit", json=rate, headers=api.admin).status_code == 200
    deliver(api, livekit.joined("ana", T0))
    deliver(api, livekit.left("ana", T0, T0 + timedelta(minutes=10)))
    published = livekit.track(
        "track_published", "ana", T0, "TR_cam", "CAMERA", T0 + timedelta(minutes=1)
    )

    assert deliver(api, published).status_code == 200
    assert deliver(api, published).status_code == 200  # redelivered

    (stay,) = stays(api)
    assert stay["usage"] == {"video.seconds": 540}
    assert stay["charge_state"] == "charged" and stay["charge"]["credits"] == 10 + 18
    ledger = api.client.get("/v1/accounts/ana/credits/ledger", headers=api.admin).json()
    assert sorted((e["kind"], e["amount"]) for e in ledger["items"]) == [
        ("adjustment", -18),
        ("charge", -10),
    ]
