"""Who may do what: the role table of the contract, row by row, for each kind of key — and what
moves money or limits, which a public-grade ingest key may never write."""

from typing import Any

import pytest

from application.tenants.create_api_key import CreateApiKeyCommand
from tests.app_client import Api
from tests.http.envelope import assert_error

ROLES = ("ingest", "app", "admin")
SESSION = "3f2b8c1e-9d4a-4e6b-8f1a-2c3d4e5f6a7b"  # no such session: allowed roles get a 404/422

# (method, path, body, the weakest role that may): the role table of API.md, one route each.
TABLE: list[tuple[str, str, Any, str]] = [
    (
        "post",
        "/v1/sessions",
        {"kind": "photo", "resource_id": "booth-1", "client_key": "k"},
        "ingest",
    ),
    ("post", f"/v1/sessions/{SESSION}/heartbeat", {}, "ingest"),
    ("post", f"/v1/sessions/{SESSION}/exit", {}, "ingest"),
    ("post", "/v1/events/batch", {"events": []}, "ingest"),
    ("post", "/v1/errors/batch", {"errors": []}, "ingest"),
    ("post", "/v1/performance/batch", {"metrics": []}, "ingest"),
    ("post", "/v1/sales", {}, "ingest"),
    ("get", f"/v1/sessions/{SESSION}", None, "ingest"),
    ("get", "/v1/sessions", None, "app"),
    ("get", f"/v1/sessions/{SESSION}/events", None, "app"),
    ("get", f"/v1/sessions/{SESSION}/distribution", None, "app"),
    ("get", "/v1/errors", None, "app"),
    ("get", "/v1/sales", None, "app"),
    ("get", "/v1/accounts/ana/limits", None, "app"),
    ("get", "/v1/accounts/ana/resources/pdf-1/trial-status", None, "app"),
    ("get", "/v1/accounts/ana/credits", None, "app"),
    ("get", "/v1/accounts/ana/credits/ledger", None, "app"),
    ("get", "/v1/accounts/ana/usage-stats", None, "app"),
    ("post", "/v1/accounts/ana/resources", {}, "app"),
    ("patch", "/v1/sales/nope/settlement", {"state": "settled"}, "app"),
    ("put", "/v1/rates/counseling", {}, "admin"),
    ("put", "/v1/plans/free", {}, "admin"),
    ("put", "/v1/accounts/ana/subscription", {}, "admin"),
    ("post", "/v1/accounts/ana/credits/grants", {}, "admin"),
    ("get", "/v1/settings", None, "admin"),
    ("put", "/v1/settings", {}, "admin"),
    ("get", "/v1/alerts", None, "admin"),
    ("get", "/v1/reports/watch-time?resource_id=w", None, "admin"),
    ("get", "/v1/reports/errors", None, "admin"),
    ("get", "/v1/reports/sales", None, "admin"),
    ("post", "/v1/snapshots", {}, "admin"),
]


@pytest.mark.parametrize(("method", "path", "body", "weakest"), TABLE)
def test_each_role_may_do_what_the_role_table_says_and_nothing_more(
    api: Api, method: str, path: str, body: Any, weakest: str
) -> None:
    keys = {"ingest": api.ingest, "app": api.app, "admin": api.admin}
    for role in ROLES:
        kwargs = {} if body is None else {"json": body}
        response = getattr(api.client, method)(path, headers=keys[role], **kwargs)
        if ROLES.index(role) < ROLES.index(weakest):
            assert_error(response, 403, "forbidden")
        else:
            assert response.status_code not in (401, 403, 500), (role, response.text)


def test_another_tenants_data_is_not_found_whatever_the_key(api: Api) -> None:
    session = api.start(kind="photo", resource_id="booth-1", subject_id=None, client_key="k")
    for role in ROLES:
        command = CreateApiKeyCommand("globex", role)
        key = {"X-API-Key": api.run(api.container.use_cases.create_api_key(), command).secret}
        read = api.client.get(f"/v1/sessions/{session['id']}", headers=key)
        assert_error(read, 404, "not_found")


def billed(api: Api) -> None:
    """A rated kind and a kind a plan limits."""
    rate = api.client.put("/v1/rates/counseling", json={"credits_per_minute": 2}, headers=api.admin)
    plan = {"default": True, "limits": {"sessions_per_resource": 3, "session_kinds": ["practice"]}}
    limited = api.client.put("/v1/plans/free", json=plan, headers=api.admin)
    assert rate.status_code == 200 and limited.status_code == 200, (rate.text, limited.text)


@pytest.mark.parametrize("kind", ["counseling", "practice"])
def test_an_ingest_key_may_not_start_or_end_what_moves_money_or_limits(api: Api, kind: str) -> None:
    billed(api)
    body = {"kind": kind, "resource_id": "r-1", "subject_id": "ana"}

    by_device = api.client.post("/v1/sessions", json=body, headers=api.ingest)
    anonymous = api.client.post(
        "/v1/sessions", json={**body, "subject_id": None, "client_key": "k"}, headers=api.ingest
    )
    session = api.start(**body)  # the product's back end starts it
    heartbeat = api.client.post(
        f"/v1/sessions/{session['id']}/heartbeat", json={}, headers=api.ingest
    )
    exit = api.client.post(
        f"/v1/sessions/{session['id']}/exit",
        json={"usage": {"analysis": 999999}},
        headers=api.ingest,
    )

    assert "back end" in assert_error(by_device, 403, "forbidden")["detail"]
    assert_error(anonymous, 403, "forbidden")
    assert_error(heartbeat, 403, "forbidden")
    assert_error(exit, 403, "forbidden")
    after = api.client.get(f"/v1/sessions/{session['id']}", headers=api.ingest).json()
    assert (after["status"], after["usage"]) == ("active", {})
    ended = api.client.post(f"/v1/sessions/{session['id']}/exit", json={}, headers=api.app)
    assert ended.status_code == 200, ended.text


def test_an_ingest_key_sends_signs_of_life_but_no_meters_to_a_billed_session(api: Api) -> None:
    billed(api)
    session = api.start(kind="counseling", resource_id="room-1", subject_id="ana")
    photo = api.client.post(
        "/v1/sessions",
        json={"kind": "photo", "resource_id": "booth-1", "client_key": "k"},
        headers=api.ingest,
    ).json()
    at = session["started_at"]
    events = [
        {"session_id": session["id"], "sequence_no": 1, "type": "tap", "at": at},
        {
            "session_id": session["id"],
            "sequence_no": 2,
            "type": "x",
            "at": at,
            "meters": {"analysis": 9},
        },
        {
            "session_id": photo["id"],
            "sequence_no": 1,
            "type": "x",
            "at": photo["started_at"],
            "meters": {"prints": 1},
        },
    ]

    sent = api.client.post("/v1/events/batch", json={"events": events}, headers=api.ingest)

    assert sent.status_code == 200, sent.text
    assert sent.json()["inserted"] == 2
    assert [(e["index"], e["error"].split(":")[0]) for e in sent.json()["errors"]] == [
        (1, "forbidden")
    ]
    read = api.client.get(f"/v1/sessions/{session['id']}", headers=api.app).json()
    assert read["usage"] == {} and read["event_count"] == 1


def test_unrated_kinds_and_telemetry_need_only_an_ingest_key(api: Api) -> None:
    billed(api)
    started = api.client.post(
        "/v1/sessions",
        json={"kind": "photo", "resource_id": "booth-1", "client_key": "k"},
        headers=api.ingest,
    )
    session_id = started.json()["id"]
    ended = api.client.post(
        f"/v1/sessions/{session_id}/exit", json={"usage": {"prints": 2}}, headers=api.ingest
    )

    assert started.status_code == 201 and ended.status_code == 200, (started.text, ended.text)
    assert ended.json()["usage"] == {"prints": 2}
