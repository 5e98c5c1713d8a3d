"""Steps of features/data_rights.feature. Visits are told in the past of the app's clock (started
so many minutes ago, ended since), which the story moves to let retention judge them."""

import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from tests.app_client import Api
from tests.fakes import FakeClock

scenarios("data_rights.feature")

Body = dict[str, Any]


@dataclass
class Story:
    """The sessions the story told, by who or what they were, and the last answer to a request
    for erasure or deletion."""

    sessions: dict[str, Body] = field(default_factory=dict)
    answer: Body = field(default_factory=dict)

    def session(self, api: Api, name: str) -> Any:
        return api.client.get(f"/v1/sessions/{self.sessions[name]['id']}", headers=api.app)


@pytest.fixture
def story() -> Story:
    return Story()


def watch(
    api: Api, clock: FakeClock, kind: str, resource: str, minutes: int, **person: Any
) -> Body:
    """A visit that ended a minute ago, `minutes` long."""
    started = clock.now() - timedelta(minutes=minutes + 1)
    session = api.start(kind=kind, resource_id=resource, started_at=started.isoformat(), **person)
    ended = api.client.post(
        f"/v1/sessions/{session['id']}/exit",
        json={"at": (started + timedelta(minutes=minutes)).isoformat()},
        headers=api.app,
    )
    assert ended.status_code == 200, ended.text
    return dict(ended.json())


@given(parsers.parse("replays are charged {credits:d} credit a minute"))
def replay_rate(api: Api, credits: int) -> None:
    rate = {"credits_per_minute": credits}
    assert api.client.put("/v1/rates/replay", json=rate, headers=api.admin).status_code == 200


@given(parsers.parse('the platform treats the attribute "{name}" as personal'))
def personal_attribute(api: Api, name: str) -> None:
    body = {"personal_attributes": [name]}
    assert api.client.put("/v1/settings", json=body, headers=api.admin).status_code == 200


@given(
    parsers.parse(
        '"{name}" watched a replay of "{resource}" for {minutes:d} minutes, '
        'with email "{email}" and store "{store}"'
    )
)
def watched_replay(
    api: Api,
    clock: FakeClock,
    story: Story,
    name: str,
    resource: str,
    minutes: int,
    email: str,
    store: str,
) -> None:
    attributes = {"email": email, "store": store}
    story.sessions[name] = watch(
        api, clock, "replay", resource, minutes, subject_id=name, attributes=attributes
    )


@given(parsers.parse('during it "{name}" answered the poll "{question}" with "{answer}"'))
def answered(api: Api, story: Story, name: str, question: str, answer: str) -> None:
    session = story.sessions[name]
    event = {
        "session_id": session["id"],
        "sequence_no": 1,
        "type": "poll_answer",
        "at": session["started_at"],
        "label": question,
        "data": {"answer": answer},
    }
    sent = api.client.post("/v1/events/batch", json={"events": [event]}, headers=api.app)
    assert sent.json()["inserted"] == 1, sent.text


@given(parsers.parse('{count:d} anonymous viewers watched "{resource}" live'))
def anonymous_viewers(api: Api, clock: FakeClock, story: Story, count: int, resource: str) -> None:
    for n in range(count):
        visit = watch(api, clock, "webinar", resource, 20, client_key=str(uuid.uuid4()))
        story.sessions[f"viewer {n + 1} of {resource}"] = visit


@given(parsers.parse('a viewer watched "{resource}" live'))
def a_viewer(api: Api, clock: FakeClock, story: Story, resource: str) -> None:
    story.sessions[f"the viewer of {resource}"] = watch(
        api, clock, "webinar", resource, 20, client_key=str(uuid.uuid4())
    )


@when(parsers.parse('"{name}" asks to be forgotten'))
@when(parsers.parse('"{name}" asks to be forgotten again'))
def forgotten(api: Api, story: Story, name: str) -> None:
    erased = api.client.delete(f"/v1/subjects/{name}", headers=api.admin)
    assert erased.status_code == 200, erased.text
    story.answer = erased.json()


@then(parsers.parse("{sessions:d} session and {events:d} event were erased"))
def erased_counts(story: Story, sessions: int, events: int) -> None:
    assert (story.answer["sessions"], story.answer["events"]) == (sessions, events)


@then("nothing was erased")
def nothing_erased(story: Story) -> None:
    assert set(story.answer.values()) == {0}, story.answer


@then(parsers.parse('no session and no ledger entry of "{name}" are found any more'))
def not_found(api: Api, name: str) -> None:
    sessions = api.client.get("/v1/sessions", params={"subject_id": name}, headers=api.app)
    ledger = api.client.get(f"/v1/accounts/{name}/credits/ledger", headers=api.app)
    assert sessions.json()["items"] == []
    assert ledger.json()["items"] == []


@then(
    parsers.parse(
        "her session still counts {minutes:d} minutes and its charge of {credits:d} credits, "
        "under a pseudonym"
    )
)
def still_counts(api: Api, story: Story, minutes: int, credits: int) -> None:
    session = story.session(api, "ana").json()
    assert session["duration_seconds"] == minutes * 60
    assert session["charge"]["credits"] == credits
    assert session["subject_id"].startswith("erased:") and "ana" not in session["subject_id"]


@then(
    parsers.parse(
        'her session holds no address, no browser, no email and no poll answer, and still store "{store}"'
    )
)
def nothing_personal(api: Api, story: Story, store: str) -> None:
    session = story.session(api, "ana").json()
    assert session["attributes"] == {"store": store}
    events = api.client.get(f"/v1/sessions/{session['id']}/events", headers=api.app).json()
    (event,) = events["items"]
    assert (event["type"], event["label"], event["data"]) == ("poll_answer", None, None)


@then(parsers.parse("the pseudonym's balance is {credits:d} credits, the sum of its ledger"))
def pseudonym_balance(api: Api, story: Story, credits: int) -> None:
    pseudonym = story.session(api, "ana").json()["subject_id"]
    balance = api.client.get(f"/v1/accounts/{pseudonym}/credits", headers=api.app).json()
    ledger = api.client.get(f"/v1/accounts/{pseudonym}/credits/ledger", headers=api.app).json()
    assert balance["balance"] == credits == sum(e["amount"] for e in ledger["items"])


@then(parsers.parse('the session of "{name}" still holds his email'))
def untouched(api: Api, story: Story, name: str) -> None:
    session = story.session(api, name).json()
    assert session["subject_id"] == name
    assert session["attributes"]["email"] == f"{name}@example.com"


@when(parsers.parse('the operator deletes the webinar "{resource}"'))
def deletes(api: Api, story: Story, resource: str) -> None:
    deleted = api.client.delete(f"/v1/resources/{resource}", headers=api.admin)
    assert deleted.status_code == 200, deleted.text
    story.answer = deleted.json()


@then(parsers.parse("{count:d} sessions and their events are gone"))
def gone(api: Api, story: Story, count: int) -> None:
    assert story.answer["sessions"] == count, story.answer
    viewers = [name for name in story.sessions if name.startswith("viewer ")]
    assert len(viewers) == count
    for name in viewers:
        assert story.session(api, name).status_code == 404


@then(
    parsers.parse(
        'the replay of "{name}" stays on her account with its charge of {credits:d} credits, '
        "erased of the rest"
    )
)
def stays_erased(api: Api, story: Story, name: str, credits: int) -> None:
    session = story.session(api, name).json()
    assert session["subject_id"] == name  # who pays for it asked for nothing
    assert session["attributes"] == {"store": "S12"}
    assert session["charge"]["credits"] == credits
    assert story.answer["erased"]["sessions"] == 1


@then(parsers.parse('the session on "{resource}" is still there'))
def still_there(api: Api, story: Story, resource: str) -> None:
    assert story.session(api, f"the viewer of {resource}").status_code == 200


@then("the live viewer's session is gone")
def viewer_gone(api: Api, story: Story) -> None:
    assert story.session(api, "the viewer of w-1").status_code == 404


@then(
    parsers.parse('the replay of "{name}" is still there, with its charge of {credits:d} credits')
)
def replay_kept(api: Api, story: Story, name: str, credits: int) -> None:
    session = story.session(api, name)
    assert session.status_code == 200 and session.json()["charge"]["credits"] == credits
