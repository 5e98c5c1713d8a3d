"""Steps of features/events.feature. Steps are synchronous: pytest-bdd cannot await."""

from collections.abc import Iterable
from typing import Any

from pytest_bdd import given, parsers, scenarios, then, when

from tests.app_client import Api
from tests.fakes import FakeClock

scenarios("events.feature")

Kiosk = dict[str, Any]


@given(
    parsers.parse('photo-booth kiosk "{booth}" has a guest session running'),
    target_fixture="kiosk",
)
def kiosk_session(api: Api, clock: FakeClock, booth: str) -> Kiosk:
    return api.start(kind="kiosk", resource_id=booth, subject_id="guest")


def send(api: Api, events: list[dict[str, Any]]) -> Any:
    return api.client.post("/v1/events/batch", json={"events": events}, headers=api.app)


def events(kiosk: Kiosk, clock: FakeClock, numbers: Iterable[int], **fields: Any) -> list[Any]:
    at = clock.now().isoformat()
    return [
        {"session_id": kiosk["id"], "sequence_no": n, "type": "photo", "at": at, **fields}
        for n in numbers
    ]


def report(api: Api, kiosk: Kiosk, clock: FakeClock, numbers: Iterable[int], **fields: Any) -> Any:
    response = send(api, events(kiosk, clock, numbers, **fields))
    assert response.status_code == 200, response.text
    return response.json()


def session(api: Api, kiosk: Kiosk) -> dict[str, Any]:
    return dict(api.client.get(f"/v1/sessions/{kiosk['id']}", headers=api.app).json())


# Money-like quantities travel as decimal strings, so no float ever rounds them.
PHOTO = {"photos": 1, "analysis_usd": "0.1"}


@when("the kiosk reports events 1 to 5, each taking 1 photo that costs 0.1 USD to analyse")
def report_five(api: Api, kiosk: Kiosk, clock: FakeClock) -> None:
    report(api, kiosk, clock, range(1, 6), meters=PHOTO)


@when(
    "the network fails before the kiosk hears back, so it reports events 1 to 5 again",
    target_fixture="outcome",
)
def report_again(api: Api, kiosk: Kiosk, clock: FakeClock) -> Any:
    return report(api, kiosk, clock, range(1, 6), meters=PHOTO)


@then(parsers.parse("the session has {count:d} events"))
def event_count(api: Api, kiosk: Kiosk, count: int) -> None:
    assert session(api, kiosk)["event_count"] == count


@then("the session used 5 photos and exactly 0.5 USD of analysis")
def used(api: Api, kiosk: Kiosk) -> None:
    assert session(api, kiosk)["usage"] == {"photos": 5, "analysis_usd": "0.5"}


@then(parsers.parse("the retry was recognised as {count:d} duplicates"))
def recognised(outcome: Any, count: int) -> None:
    assert (outcome["inserted"], outcome["duplicates"], outcome["failed"]) == (0, count, 0)


@when("the kiosk reports events 1, 2, 3, 6 and 7")
def report_with_loss(api: Api, kiosk: Kiosk, clock: FakeClock) -> None:
    report(api, kiosk, clock, [1, 2, 3, 6, 7])


@when(parsers.parse("event {number:d} arrives late"))
def arrives_late(api: Api, kiosk: Kiosk, clock: FakeClock, number: int) -> None:
    report(api, kiosk, clock, [number])


@then(parsers.parse("the session shows events {first:d} to {last:d} as missing"))
def missing(api: Api, kiosk: Kiosk, first: int, last: int) -> None:
    assert session(api, kiosk)["event_gaps"] == [[first, last]]


@then(parsers.parse("the session shows only event {number:d} as missing"))
def one_missing(api: Api, kiosk: Kiosk, number: int) -> None:
    assert session(api, kiosk)["event_gaps"] == [[number, number]]


@when("the kiosk reports events 1 to 3, but event 2 carries no time", target_fixture="outcome")
def report_one_bad(api: Api, kiosk: Kiosk, clock: FakeClock) -> Any:
    batch = events(kiosk, clock, [1, 2, 3])
    del batch[1]["at"]
    response = send(api, batch)
    assert response.status_code == 200, response.text
    return response.json()


@then("events 1 and 3 are stored")
def stored(api: Api, kiosk: Kiosk) -> None:
    page = api.client.get(f"/v1/sessions/{kiosk['id']}/events", headers=api.app).json()
    assert [e["sequence_no"] for e in page["items"]] == [1, 3]


@then("event 2 is reported as invalid")
def reported(outcome: Any) -> None:
    assert (outcome["inserted"], outcome["failed"]) == (2, 1)
    (error,) = outcome["errors"]
    assert error["index"] == 1 and error["error"].startswith("validation_error: at")


@given("the kiosk has reported events 1 and 2")
def reported_two(api: Api, kiosk: Kiosk, clock: FakeClock) -> None:
    report(api, kiosk, clock, [1, 2])


@given("the guest has left")
def guest_left(api: Api, kiosk: Kiosk) -> None:
    response = api.client.post(f"/v1/sessions/{kiosk['id']}/exit", json={}, headers=api.app)
    assert response.status_code == 200, response.text


@when("a minute later the kiosk reports events 1 to 3", target_fixture="outcome")
def report_three(api: Api, kiosk: Kiosk, clock: FakeClock) -> Any:
    clock.advance(60)  # so event 3 happened after the guest's own exit
    return report(api, kiosk, clock, [1, 2, 3])


@then("events 1 and 2 are recognised as duplicates")
def two_duplicates(outcome: Any) -> None:
    assert (outcome["inserted"], outcome["duplicates"]) == (0, 2)


@then("event 3 is refused because the session has ended")
def refused_ended(outcome: Any) -> None:
    assert outcome["errors"] == [{"index": 2, "error": "session_ended"}]


@when(parsers.parse("the kiosk reports {count:d} events in one batch"), target_fixture="attempt")
def report_many(api: Api, kiosk: Kiosk, clock: FakeClock, count: int) -> Any:
    return send(api, events(kiosk, clock, range(1, count + 1)))


@then("the batch is refused as too large")
def too_large(attempt: Any) -> None:
    assert attempt.status_code == 413 and attempt.json()["error"] == "payload_too_large"


@when(
    parsers.parse(
        "the kiosk reports {total:d} analysis results: {red:d} red, {yellow:d} yellow and "
        "{green:d} green"
    )
)
def report_results(
    api: Api, kiosk: Kiosk, clock: FakeClock, total: int, red: int, yellow: int, green: int
) -> None:
    results = ["red"] * red + ["yellow"] * yellow + ["green"] * green
    assert len(results) == total
    batch = [
        {**event, "type": "analysis", "label": label}
        for event, label in zip(events(kiosk, clock, range(1, total + 1)), results, strict=True)
    ]
    response = send(api, batch)
    assert response.status_code == 200 and response.json()["inserted"] == total, response.text


@then(parsers.parse("the results are {red:g}% red, {yellow:g}% yellow and {green:g}% green"))
def shares(api: Api, kiosk: Kiosk, red: float, yellow: float, green: float) -> None:
    response = api.client.get(
        f"/v1/sessions/{kiosk['id']}/distribution", params={"field": "label"}, headers=api.app
    )
    assert response.json()["percentages"] == {"red": red, "yellow": yellow, "green": green}
