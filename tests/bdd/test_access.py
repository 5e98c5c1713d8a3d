"""Steps of features/access.feature. Each action of the role table is one request, tried with
the tenant's ingest, app and admin keys; "allowed" is any answer but 401/403, "refused" a 403."""

import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from tests.app_client import Api
from tests.fakes import FakeClock

scenarios("access.feature")

Headers = dict[str, str]
Action = Callable[[Api, Headers], Any]


@pytest.fixture
def keys() -> dict[str, Headers]:
    """The keys the story issued, by what holds them."""
    return {}


@pytest.fixture
def visit() -> dict[str, Any]:
    """The session the story is about, as the API last answered it."""
    return {}


@pytest.fixture
def retries() -> list[int]:
    """The Retry-After of every refused batch."""
    return []


def issue(api: Api, body: dict[str, Any]) -> Headers:
    issued = api.client.post("/v1/keys", json=body, headers=api.admin)
    assert issued.status_code == 201, issued.text
    return {"X-API-Key": issued.json()["secret"]}


def kiosk_key(api: Api, keys: dict[str, Headers], kiosk: str) -> Headers:
    if kiosk not in keys:
        keys[kiosk] = issue(api, {"role": "ingest", "name": kiosk, "resources": [kiosk]})
    return keys[kiosk]


def an_error(device: str) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "at": datetime.now(UTC).isoformat(),
        "device_id": device,
        "app_version": "1.5.0",
        "severity": "error",
        "type": "PrinterError",
        "message": "paper jam",
    }


def a_sale(api: Api) -> str:
    """A kiosk's sale, waiting for settlement; its id."""
    session = api.start(kind="kiosk", resource_id="booth-1", subject_id=None, client_key="guest")
    sale = {
        "id": str(uuid.uuid4()),
        "session_id": session["id"],
        "device_id": "booth-1",
        "occurred_at": datetime.now(UTC).isoformat(),
        "currency": "KRW",
        "amounts": {"gross": "18000", "discount": "0", "tax": "0", "net": "18000"},
        "payment_method": "card",
    }
    assert api.client.post("/v1/sales", json=sale, headers=api.app).status_code == 201
    return str(sale["id"])


def actions(api: Api) -> dict[str, Action]:
    visit = api.start(kind="webinar", resource_id="w-1", subject_id="ana")
    sale_id = a_sale(api)
    grant = {"amount": 10, "reason": "plan"}
    return {
        "record a visit": lambda a, key: a.client.post(
            "/v1/sessions",
            json={"kind": "webinar", "resource_id": "w-1", "client_key": "c"},
            headers=key,
        ),
        "read back a visit by its id": lambda a, key: a.client.get(
            f"/v1/sessions/{visit['id']}", headers=key
        ),
        "list everyone's visits": lambda a, key: a.client.get("/v1/sessions", headers=key),
        "read a subject's credits": lambda a, key: a.client.get(
            "/v1/accounts/ana/credits", headers=key
        ),
        "register a resource": lambda a, key: a.client.post(
            "/v1/accounts/ana/resources", json={"resource_id": "pdf-1", "kind": "pdf"}, headers=key
        ),
        "settle a sale": lambda a, key: a.client.patch(
            f"/v1/sales/{sale_id}/settlement", json={"state": "disputed"}, headers=key
        ),
        "grant credits": lambda a, key: a.client.post(
            "/v1/accounts/ana/credits/grants",
            json={**grant, "idempotency_key": str(uuid.uuid4())},
            headers=key,
        ),
        "change the settings": lambda a, key: a.client.put(
            "/v1/settings", json={"low_balance_credits": 5}, headers=key
        ),
        "read a report": lambda a, key: a.client.get("/v1/reports/active", headers=key),
        "issue a key": lambda a, key: a.client.post(
            "/v1/keys", json={"role": "ingest"}, headers=key
        ),
    }


@then("the keys may do this:")
def role_table(api: Api, datatable: list[list[str]]) -> None:
    header, *rows = datatable
    roles = {"ingest": api.ingest, "app": api.app, "admin": api.admin}
    tried = actions(api)
    found = []
    for action, *_ in rows:
        verdicts = []
        for role in header[1:]:
            status = tried[action](api, roles[role]).status_code
            assert status != 401, (action, role)
            verdicts.append("refused" if status == 403 else "allowed")
        found.append([action, *verdicts])
    assert found == rows


@given(parsers.parse("counseling is charged {credits:d} credits a minute"))
def counseling_rate(api: Api, credits: int) -> None:
    rate = {"credits_per_minute": credits}
    assert api.client.put("/v1/rates/counseling", json=rate, headers=api.admin).status_code == 200


def counseling_for(subject: str) -> dict[str, Any]:
    return {"kind": "counseling", "resource_id": "room-1", "subject_id": subject}


@when(
    parsers.parse('a page starts a counseling session for "{subject}" with its own key'),
    target_fixture="attempt",
)
def page_starts(api: Api, subject: str) -> Any:
    return api.client.post("/v1/sessions", json=counseling_for(subject), headers=api.ingest)


@then(parsers.parse('it is refused: "{why}"'))
def refused(attempt: Any, why: str) -> None:
    assert attempt.status_code in (401, 403), attempt.text
    assert why in attempt.json()["detail"]


@when(
    parsers.parse(
        'the counseling app\'s back end starts the session for "{subject}" with its app key'
    )
)
def back_end_starts(api: Api, clock: FakeClock, visit: dict[str, Any], subject: str) -> None:
    started = api.client.post("/v1/sessions", json=counseling_for(subject), headers=api.app)
    assert started.status_code == 201, started.text
    visit.update(started.json())


@when("the back end ends the session")
def back_end_ends(api: Api, visit: dict[str, Any]) -> None:
    ended = api.client.post(f"/v1/sessions/{visit['id']}/exit", headers=api.app)
    assert ended.status_code == 200, ended.text
    visit.update(ended.json())


@given(parsers.parse('kiosk "{kiosk}" holds a key for itself alone'))
def scoped_kiosk(api: Api, keys: dict[str, Headers], kiosk: str) -> None:
    kiosk_key(api, keys, kiosk)


@given(parsers.parse('a customer starts a session on "{kiosk}" with the kiosk\'s key'))
@when(parsers.parse('a customer starts a session on "{kiosk}" with the kiosk\'s key'))
def customer_starts(api: Api, keys: dict[str, Headers], visit: dict[str, Any], kiosk: str) -> None:
    body = {"kind": "kiosk", "resource_id": kiosk, "client_key": "guest"}
    started = api.client.post("/v1/sessions", json=body, headers=kiosk_key(api, keys, kiosk))
    assert started.status_code == 201, started.text
    visit.update(started.json())


@then("the session is active")
def active(visit: dict[str, Any]) -> None:
    assert visit["status"] == "active"


@when(
    parsers.parse('kiosk "{kiosk}" tries to start a session on "{other}"'),
    target_fixture="attempt",
)
def starts_elsewhere(api: Api, keys: dict[str, Headers], kiosk: str, other: str) -> Any:
    body = {"kind": "kiosk", "resource_id": other, "client_key": "guest"}
    return api.client.post("/v1/sessions", json=body, headers=kiosk_key(api, keys, kiosk))


@when(parsers.parse('kiosk "{kiosk}" reports an error of "{other}"'), target_fixture="attempt")
def reports_elsewhere(api: Api, keys: dict[str, Headers], kiosk: str, other: str) -> Any:
    return api.client.post("/v1/errors", json=an_error(other), headers=kiosk_key(api, keys, kiosk))


@when(parsers.parse('kiosk "{kiosk}" reports an error of its own'))
def reports_own(api: Api, keys: dict[str, Headers], kiosk: str) -> None:
    sent = api.client.post("/v1/errors", json=an_error(kiosk), headers=kiosk_key(api, keys, kiosk))
    assert sent.status_code == 201, sent.text


@then(parsers.parse('the operator sees {count:d} error of "{kiosk}"'))
def errors_of(api: Api, count: int, kiosk: str) -> None:
    listed = api.client.get("/v1/errors", headers=api.admin).json()["items"]
    assert [e["device_id"] for e in listed] == [kiosk] * count


@given(parsers.parse('the billing back end holds an app key named "{name}"'))
def billing_key(api: Api, keys: dict[str, Headers], name: str) -> None:
    keys[name] = issue(api, {"role": "app", "name": name})
    assert api.client.get("/v1/sessions", headers=keys[name]).status_code == 200


@when(parsers.parse('the operator revokes the key "{name}"'))
def revokes(api: Api, name: str) -> None:
    listed = api.client.get("/v1/keys", headers=api.admin).json()["items"]
    (key,) = [k for k in listed if k["name"] == name]
    assert api.client.delete(f"/v1/keys/{key['id']}", headers=api.admin).status_code == 200


@then(parsers.parse('the back end\'s next request is refused: "{why}"'))
def back_end_refused(api: Api, keys: dict[str, Headers], why: str) -> None:
    refused(api.client.get("/v1/sessions", headers=keys["billing"]), why)


@then(parsers.parse('the operator\'s list of keys shows "{name}" revoked, and no secret'))
def listed_revoked(api: Api, name: str) -> None:
    listed = api.client.get("/v1/keys", headers=api.admin).json()["items"]
    (key,) = [k for k in listed if k["name"] == name]
    assert key["revoked_at"] is not None and "secret" not in key


@given(parsers.parse("each key may send {per_second:d} requests a second"))
def rate_limit(api: Api, per_second: int) -> None:
    limit = {"rate_limit_per_second": per_second}
    assert api.client.put("/v1/settings", json=limit, headers=api.admin).status_code == 200


@when(
    parsers.parse(
        "a page sends {batches:d} batches of {events:d} events at once, "
        "retrying each refused one when told"
    )
)
def page_sends(
    api: Api, visit: dict[str, Any], retries: list[int], batches: int, events: int
) -> None:
    visit.update(api.start(kind="page", resource_id="home", subject_id=None, client_key="tab"))

    def send(batch: int) -> None:
        body = {
            "events": [
                {
                    "session_id": visit["id"],
                    "sequence_no": 1 + batch * events + n,
                    "type": "scroll",
                    "at": datetime.now(UTC).isoformat(),
                }
                for n in range(events)
            ]
        }
        while (
            sent := api.client.post("/v1/events/batch", json=body, headers=api.ingest)
        ).status_code == 429:
            retries.append(int(sent.headers["Retry-After"]))
            time.sleep(float(sent.headers["Retry-After"]))  # the limit counts real seconds
        assert sent.status_code == 200 and sent.json()["inserted"] == events, sent.text

    with ThreadPoolExecutor(batches) as pool:
        list(pool.map(send, range(batches)))


@then(parsers.parse("some batches were told to retry after {seconds:d} second"))
def told_to_retry(retries: list[int], seconds: int) -> None:
    assert retries and set(retries) == {seconds}, retries


@then(parsers.parse("the visit holds all {count:d} events, each once"))
def all_events(api: Api, visit: dict[str, Any], count: int) -> None:
    listed = api.client.get(
        f"/v1/sessions/{visit['id']}/events", params={"limit": 500}, headers=api.app
    ).json()["items"]
    assert sorted(e["sequence_no"] for e in listed) == list(range(1, count + 1))


@then("another tenant's key does not find the session")
def other_tenant(api: Api, visit: dict[str, Any]) -> None:
    found = api.client.get(f"/v1/sessions/{visit['id']}", headers=api.other_tenant)
    assert found.status_code == 404, found.text
