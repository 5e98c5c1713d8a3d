"""Steps of features/events.feature."""

from typing import Any

from pytest_bdd import given, parsers, scenarios, then, when

from tests.app_client import Api

scenarios("events.feature")

AT = "2026-11-24T12:00:00Z"


@given(
    parsers.parse('photo-booth kiosk "{booth}" has a guest session running'),
    target_fixture="kiosk",
)
def kiosk_session(api: Api, booth: str) -> dict[str, Any]:
    return api.start(kind="kiosk", resource_id=booth, subject_id="guest")


def report(api: Api, kiosk: dict[str, Any], numbers: list[int], **fields: Any) -> dict[str, Any]:
    events = [
        {"session_id": kiosk["id"], "sequence_no": n, "type": "photo", "at": AT, **fields}
        for n in numbers
    ]
    response = api.client.post("/v1/events/batch", json={"events": events}, headers=api.ingest)
    assert response.status_code == 200, response.text
    return dict(response.json())


def session(api: Api, kiosk: dict[str, Any]) -> dict[str, Any]:
    return dict(api.client.get(f"/v1/sessions/{kiosk['id']}", headers=api.ingest).json())


@when(parsers.parse("the kiosk reports events 1 to 5, each taking {photos:d} photo"))
def report_five(api: Api, kiosk: dict[str, Any], photos: int) -> None:
    report(api, kiosk, [1, 2, 3, 4, 5], meters={"photos": photos})


@when(
    "the network fails before the kiosk hears back, so it reports events 1 to 5 again",
    target_fixture="retry",
)
def report_again(api: Api, kiosk: dict[str, Any]) -> dict[str, Any]:
    return report(api, kiosk, [1, 2, 3, 4, 5], meters={"photos": 1})


@then(parsers.parse("the session has {count:d} events"))
def event_count(api: Api, kiosk: dict[str, Any], count: int) -> None:
    assert session(api, kiosk)["event_count"] == count


@then(parsers.parse("the session used {photos:d} photos"))
def photos_used(api: Api, kiosk: dict[str, Any], photos: int) -> None:
    assert session(api, kiosk)["usage"] == {"photos": photos}


@then(parsers.parse("the retry was recognised as {count:d} duplicates"))
def recognised(retry: dict[str, Any], count: int) -> None:
    assert (retry["inserted"], retry["duplicates"]) == (0, count)


@when("the kiosk reports events 1, 2, 3, 6 and 7")
def report_with_loss(api: Api, kiosk: dict[str, Any]) -> None:
    report(api, kiosk, [1, 2, 3, 6, 7])


@then(parsers.parse("the session shows events {first:d} to {last:d} as missing"))
def missing(api: Api, kiosk: dict[str, Any], first: int, last: int) -> None:
    assert session(api, kiosk)["event_gaps"] == [[first, last]]


@when("the kiosk reports events 1 to 3, but event 2 carries no time", target_fixture="outcome")
def report_one_bad(api: Api, kiosk: dict[str, Any]) -> dict[str, Any]:
    events = [
        {"session_id": kiosk["id"], "sequence_no": n, "type": "photo", "at": AT} for n in (1, 2, 3)
    ]
    del events[1]["at"]
    response = api.client.post("/v1/events/batch", json={"events": events}, headers=api.ingest)
    return dict(response.json())


@then("events 1 and 3 are stored")
def stored(api: Api, kiosk: dict[str, Any]) -> None:
    page = api.client.get(f"/v1/sessions/{kiosk['id']}/events", headers=api.ingest).json()
    assert [e["sequence_no"] for e in page["items"]] == [1, 3]


@then("event 2 is reported as invalid")
def reported(outcome: dict[str, Any]) -> None:
    assert outcome["failed"] == 1
    assert outcome["errors"][0]["index"] == 1
    assert outcome["errors"][0]["error"].startswith("validation_error: at")
