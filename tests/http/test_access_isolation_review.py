"""A hostile review of tenant isolation and access control: one tenant naming another's sessions,
subjects, resources, keys, plans and funnels by id; a device's scoped key writing outside its
scope by every write route; revoked keys presented every way a key can be; keys of a tenant that
is gone; and auth headers no client should send. The contract: another tenant's data is 404
(never 403), a missing/unknown/revoked/expired key is 401, a wrong role is 403, never a 500."""

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from application.tenants.create_api_key import CreateApiKeyCommand
from domain.tenants import ApiKey, Role
from tests.app_client import Api
from tests.http.envelope import assert_error
from tests.http.raw_requests import raw_get
from tests.http.test_scoped_keys_api import KIOSK, scoped_key
from tests.http.test_telemetry_api import a_metric, a_sale, an_error

NOW = datetime.now(UTC).replace(microsecond=0)


def ts(minutes: float) -> str:
    return (NOW - timedelta(hours=1) + timedelta(minutes=minutes)).isoformat()


def issued(api: Api, tenant: str, role: str, **fields: Any) -> dict[str, str]:
    """Headers carrying a new key of `tenant` with `role`."""
    created = api.run(
        api.container.use_cases.create_api_key(), CreateApiKeyCommand(tenant, role, **fields)
    )
    return {"X-API-Key": created.secret}


def start(api: Api, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    body = {"kind": "webinar", "resource_id": "webinar-1", "subject_id": "ana", **body}
    response = api.client.post("/v1/sessions", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


def ended(api: Api, headers: dict[str, str], session: dict[str, Any], at: str) -> None:
    response = api.client.post(
        f"/v1/sessions/{session['id']}/exit", json={"at": at}, headers=headers
    )
    assert response.status_code == 200, response.text


def key_ids(api: Api, admin: dict[str, str]) -> set[str]:
    listed = api.client.get("/v1/keys", headers=admin)
    assert listed.status_code == 200, listed.text
    return {k["id"] for k in listed.json()["items"]}


# --- One tenant naming another's things by id ---------------------------------------------------


def test_another_tenants_admin_neither_lists_nor_revokes_my_keys(api: Api) -> None:
    """Revoking a key by id is an admin's; another tenant's admin must find no such key."""
    globex_admin = issued(api, "globex", "admin")
    mine = key_ids(api, api.admin)
    app_key_id = next(
        k["id"]
        for k in api.client.get("/v1/keys", headers=api.admin).json()["items"]
        if k["role"] == "app"
    )

    theirs = key_ids(api, globex_admin)
    revoke = api.client.delete(f"/v1/keys/{app_key_id}", headers=globex_admin)

    assert not mine & theirs
    assert_error(revoke, 404, "not_found")
    assert api.client.get("/v1/sessions", headers=api.app).status_code == 200
    still = [k for k in api.client.get("/v1/keys", headers=api.admin).json()["items"]]
    assert all(k["revoked_at"] is None for k in still if k["id"] == app_key_id)


def test_erasing_a_subject_leaves_the_same_subject_of_another_tenant_untouched(api: Api) -> None:
    """Subject ids are the tenant's own: globex's `ana` is not acme's `ana`."""
    globex_admin = issued(api, "globex", "admin")
    mine = start(api, api.app, attributes={"ip": "203.0.113.7"})
    start(api, api.other_tenant, attributes={"ip": "198.51.100.1"})

    erased = api.client.delete("/v1/subjects/ana", headers=globex_admin)

    assert erased.status_code == 200, erased.text
    assert erased.json()["sessions"] == 1, erased.json()
    kept = api.client.get(f"/v1/sessions/{mine['id']}", headers=api.app).json()
    assert (kept["subject_id"], kept["attributes"]["ip"]) == ("ana", "203.0.113.7")
    listed = api.client.get("/v1/sessions", params={"subject_id": "ana"}, headers=api.app)
    assert [s["id"] for s in listed.json()["items"]] == [mine["id"]]


def test_deleting_a_resource_leaves_another_tenants_resource_of_that_name(api: Api) -> None:
    globex_admin = issued(api, "globex", "admin")
    mine = start(api, api.app, **KIOSK, resource_id="kiosk-1")
    event = {"session_id": mine["id"], "sequence_no": 1, "type": "tap", "at": mine["started_at"]}
    sent = api.client.post("/v1/events/batch", json={"events": [event]}, headers=api.app)
    assert sent.json()["inserted"] == 1, sent.text
    start(api, api.other_tenant, **KIOSK, resource_id="kiosk-1")

    deleted = api.client.delete("/v1/resources/kiosk-1", headers=globex_admin)

    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["sessions"] == 1, deleted.json()
    kept = api.client.get(f"/v1/sessions/{mine['id']}", headers=api.app)
    assert kept.status_code == 200 and kept.json()["event_count"] == 1, kept.text


def test_a_client_session_id_another_tenant_uses_is_another_session(api: Api) -> None:
    """A client-generated id is idempotent within a tenant only: in another tenant the same id
    must neither replay (200, leaking acme's session), nor conflict (409, revealing that it
    exists), nor touch acme's session."""
    session_id = str(uuid.uuid4())
    body = {
        "id": session_id,
        "kind": "webinar",
        "resource_id": "webinar-1",
        "subject_id": "ana",
        "attributes": {"plan": "acme-secret"},
    }
    mine = api.client.post("/v1/sessions", json=body, headers=api.app)
    assert mine.status_code == 201, mine.text

    same = api.client.post("/v1/sessions", json=body, headers=api.other_tenant)
    other = api.client.post(
        "/v1/sessions", json={**body, "resource_id": "other"}, headers=api.other_tenant
    )
    left = api.client.post(f"/v1/sessions/{session_id}/exit", json={}, headers=api.other_tenant)
    event = {
        "session_id": session_id,
        "sequence_no": 1,
        "type": "tap",
        "at": mine.json()["started_at"],
    }
    sent = api.client.post("/v1/events/batch", json={"events": [event]}, headers=api.other_tenant)

    assert same.status_code == 201, same.text
    assert_error(other, 409, "conflict")  # a conflict with globex's own session, not acme's
    assert left.status_code == 200, left.text
    assert sent.json()["inserted"] == 1, sent.text
    kept = api.client.get(f"/v1/sessions/{session_id}", headers=api.app).json()
    assert (kept["status"], kept["event_count"]) == ("active", 0), kept


def test_the_same_error_metric_and_snapshot_ids_in_two_tenants_are_two_records(api: Api) -> None:
    globex_admin = issued(api, "globex", "admin")
    snapshot = {
        "source": "lk-1",
        "at": ts(0),
        "cpu_percent": 41.5,
        "memory_percent": 62.0,
        "memory_mb": 3072.5,
        "traffic_bytes_total": 5000,
        "concurrent_users": 40,
        "active_rooms": 2,
    }
    for headers in (api.app, api.other_tenant):
        message = f"paper jam at {headers['X-API-Key'][:8]}"
        error = api.client.post("/v1/errors", json=an_error("e1", message=message), headers=headers)
        metric = api.client.post(
            "/v1/performance",
            json=a_metric("m1", 10 if headers is api.app else 99),
            headers=headers,
        )
        assert (error.status_code, metric.status_code) == (201, 201), (error.text, metric.text)
    for headers in (api.admin, globex_admin):
        recorded = api.client.post("/v1/snapshots", json=snapshot, headers=headers)
        assert recorded.status_code == 200 and recorded.json()["inserted"] == 1, recorded.text

    mine = api.client.get("/v1/errors", headers=api.app).json()["items"]
    report = api.client.get("/v1/reports/performance", headers=api.admin).json()["items"]

    assert [e["message"] for e in mine] == [f"paper jam at {api.app['X-API-Key'][:8]}"]
    assert [(r["count"], r["max_ms"]) for r in report] == [(1, 10)], report


def test_a_subjects_credits_are_its_tenants_own(api: Api) -> None:
    """Same subject, same idempotency key in two tenants: two grants, two balances."""
    globex_admin = issued(api, "globex", "admin")
    grant = {"amount": 100, "reason": "welcome", "idempotency_key": "welcome-ana"}
    granted = api.client.post("/v1/accounts/ana/credits/grants", json=grant, headers=api.admin)
    assert granted.status_code == 201, granted.text
    ended(api, api.app, start(api, api.app, started_at=ts(0)), ts(5))

    theirs = api.client.post(
        "/v1/accounts/ana/credits/grants", json={**grant, "amount": 7}, headers=globex_admin
    )
    balance = api.client.get("/v1/accounts/ana/credits", headers=api.other_tenant).json()
    ledger = api.client.get("/v1/accounts/ana/credits/ledger", headers=api.other_tenant).json()
    stats = api.client.get("/v1/accounts/ana/usage-stats", headers=api.other_tenant).json()

    assert theirs.status_code == 201, theirs.text
    assert theirs.json()["amount"] == 7 and theirs.json()["id"] != granted.json()["id"]
    assert (balance["balance"], balance["granted"]) == (7, 7), balance
    assert [e["amount"] for e in ledger["items"]] == [7]
    assert (stats["total_sessions"], stats["total_duration_seconds"]) == (0, 0), stats
    mine = api.client.get("/v1/accounts/ana/credits", headers=api.app).json()
    assert mine["balance"] == 100, mine


def test_another_tenants_plans_funnels_and_subscriptions_are_not_found(api: Api) -> None:
    globex_admin = issued(api, "globex", "admin")
    plan = {"default": False, "limits": {"sessions_per_resource": 1, "session_kinds": ["practice"]}}
    assert api.client.put("/v1/plans/pro", json=plan, headers=api.admin).status_code == 200
    funnel = {
        "kind": "kiosk",
        "stages": [
            {"name": "frame", "match": {"type": "screen_enter"}},
            {"name": "capture", "match": {"type": "capture"}},
        ],
    }
    assert api.client.put("/v1/funnels/booth", json=funnel, headers=api.admin).status_code == 200
    until = (NOW + timedelta(days=30)).isoformat()

    read_plan = api.client.get("/v1/plans/pro", headers=globex_admin)
    plans = api.client.get("/v1/plans", headers=globex_admin).json()["items"]
    read_funnel = api.client.get("/v1/funnels/booth", headers=globex_admin)
    report = api.client.get("/v1/reports/funnel/booth", headers=globex_admin)
    removed = api.client.delete("/v1/funnels/booth", headers=globex_admin)
    subscribed = api.client.put(
        "/v1/accounts/ana/subscription",
        json={"plan_id": "pro", "ends_at": until},
        headers=globex_admin,
    )

    assert_error(read_plan, 404, "not_found")
    assert plans == []
    assert_error(read_funnel, 404, "not_found")
    assert_error(report, 404, "not_found")
    assert_error(removed, 404, "not_found")
    assert subscribed.status_code in (404, 422), subscribed.text
    assert api.client.get("/v1/funnels/booth", headers=api.admin).status_code == 200
    history = api.client.get("/v1/accounts/ana/subscriptions", headers=api.admin).json()
    assert history["items"] == []


def test_reports_of_one_tenant_count_none_of_anothers_sessions(api: Api) -> None:
    """Both tenants use a resource and a subject of the same names; every report stays apart."""
    globex_admin = issued(api, "globex", "admin")
    for minute in (0, 10):
        ended(
            api,
            api.app,
            start(api, api.app, resource_id="shared-1", started_at=ts(minute)),
            ts(minute + 5),
        )
    start(api, api.app, resource_id="shared-1")  # active now
    ended(
        api,
        api.other_tenant,
        start(api, api.other_tenant, resource_id="shared-1", started_at=ts(20)),
        ts(21),
    )

    def report(path: str, **params: str) -> Any:
        response = api.client.get(path, params=params, headers=globex_admin)
        assert response.status_code == 200, (path, response.text)
        return response.json()

    watch = report("/v1/reports/watch-time", resource_id="shared-1")["items"]
    resources = report("/v1/reports/resources")["items"]
    active = report("/v1/reports/active", resource_id="shared-1")

    assert [(w["subject_id"], w["visit_count"], w["total_seconds"]) for w in watch] == [
        ("ana", 1, 60)
    ]
    assert [(r["resource_id"], r["total_sessions"], r["active_now"]) for r in resources] == [
        ("shared-1", 1, 0)
    ]
    assert active["active"] == 0


def test_an_alert_of_one_tenant_is_not_anothers(api: Api) -> None:
    globex_admin = issued(api, "globex", "admin")
    rate = {"credits_per_minute": 10}
    assert api.client.put("/v1/rates/counseling", json=rate, headers=api.admin).status_code == 200
    session = start(api, api.app, kind="counseling", started_at=ts(0))
    ended(api, api.app, session, ts(5))  # no credits: soft overdraft, an alert
    assert api.client.get("/v1/alerts", headers=api.admin).json()["items"], "no alert to leak"

    theirs = api.client.get("/v1/alerts", headers=globex_admin)

    assert theirs.status_code == 200 and theirs.json()["items"] == [], theirs.text


def test_a_key_sees_another_tenants_billed_session_as_not_found_not_forbidden(api: Api) -> None:
    """An ingest key is refused billed kinds (403), but a session of another tenant is 404
    first: a 403 would tell acme's key that globex has a billed session of that id."""
    globex_admin = issued(api, "globex", "admin")
    rate = {"credits_per_minute": 1}
    assert (
        api.client.put("/v1/rates/counseling", json=rate, headers=globex_admin).status_code == 200
    )
    assert api.client.put("/v1/rates/counseling", json=rate, headers=api.admin).status_code == 200
    theirs = start(api, api.other_tenant, kind="counseling")
    path = f"/v1/sessions/{theirs['id']}"

    for headers in (api.ingest, scoped_key(api, "kiosk-1")):
        assert_error(api.client.get(path, headers=headers), 404, "not_found")
        assert_error(
            api.client.post(f"{path}/heartbeat", json={}, headers=headers), 404, "not_found"
        )
        assert_error(api.client.post(f"{path}/exit", json={}, headers=headers), 404, "not_found")
    still = api.client.get(path, headers=api.other_tenant).json()
    assert still["status"] == "active"


# --- A device's key scoped to its resources -----------------------------------------------------


def test_a_scoped_keys_telemetry_batches_cannot_hang_on_another_resources_session(
    api: Api,
) -> None:
    """The single-record routes refuse this (test_scope_and_erasure_edges_api); the batch
    routes are the same write and must refuse it too, storing nothing of it."""
    key = scoped_key(api, "kiosk-1")
    theirs = start(api, api.app, **KIOSK, resource_id="kiosk-18")

    errors = api.client.post(
        "/v1/errors/batch",
        json={"errors": [an_error("e-theirs", session_id=theirs["id"])]},
        headers=key,
    )
    metrics = api.client.post(
        "/v1/performance/batch",
        json={"metrics": [a_metric("m-theirs", 5, session_id=theirs["id"])]},
        headers=key,
    )

    for response in (errors, metrics):
        if response.status_code == 200:  # refused item by item
            assert response.json()["inserted"] == 0, response.text
            assert response.json()["errors"][0]["error"].startswith("forbidden"), response.text
        else:
            assert_error(response, 403, "forbidden")
    stored = api.client.get("/v1/errors", headers=api.app).json()["items"]
    report = api.client.get("/v1/reports/performance", headers=api.admin).json()["items"]
    assert stored == [] and report == [], (stored, report)


def test_a_scoped_key_cannot_end_another_resources_session_by_beacon(api: Api) -> None:
    """The exit also takes its key in the URL (navigator.sendBeacon): the scope holds there."""
    key = scoped_key(api, "kiosk-1")["X-API-Key"]
    theirs = start(api, api.app, **KIOSK, resource_id="kiosk-18")
    mine = start(api, {"X-API-Key": key}, **KIOSK, resource_id="kiosk-1")

    def beacon(session: dict[str, Any]) -> Any:
        return api.client.post(
            f"/v1/sessions/{session['id']}/exit",
            params={"key": key},
            content=b'{"status": "abandoned"}',
            headers={"Content-Type": "text/plain"},
        )

    refused = beacon(theirs)
    accepted = beacon(mine)

    assert_error(refused, 403, "forbidden")
    assert accepted.status_code == 200 and accepted.json()["status"] == "abandoned"
    assert (
        api.client.get(f"/v1/sessions/{theirs['id']}", headers=api.app).json()["status"] == "active"
    )


def test_a_scoped_key_cannot_replay_another_resources_start_to_read_it(api: Api) -> None:
    """Replaying a start with a session's id and content answers the stored session: a scoped
    key must not get another resource's session (its attributes) that way."""
    key = scoped_key(api, "kiosk-1")
    body = {
        "id": str(uuid.uuid4()),
        **KIOSK,
        "resource_id": "kiosk-18",
        "attributes": {"ip": "203.0.113.9"},
    }
    first = api.client.post("/v1/sessions", json=body, headers=api.app)
    assert first.status_code == 201, first.text

    replay = api.client.post("/v1/sessions", json=body, headers=key)

    assert_error(replay, 403, "forbidden")
    assert "203.0.113.9" not in replay.text


def test_a_scoped_key_is_an_ingest_key_for_everything_else(api: Api) -> None:
    """A scope narrows an ingest key; it never widens it into reads, keys or erasure."""
    key = scoped_key(api, "kiosk-1")
    routes: list[tuple[str, str, Any]] = [
        ("get", "/v1/sessions", None),
        ("get", "/v1/errors", None),
        ("get", "/v1/keys", None),
        ("post", "/v1/keys", {"role": "ingest", "resources": ["kiosk-2"]}),
        ("delete", "/v1/resources/kiosk-18", None),
        ("delete", "/v1/subjects/ana", None),
        ("patch", "/v1/sales/s1/settlement", {"state": "settled"}),
    ]
    for method, path, body in routes:
        kwargs = {} if body is None else {"json": body}
        response = api.client.request(method, path, headers=key, **kwargs)
        assert_error(response, 403, "forbidden")


# --- Revoked, expired and orphaned keys ---------------------------------------------------------


def test_a_revoked_key_is_refused_however_it_is_presented(api: Api) -> None:
    """Revocation holds for the header, the bearer token and the exit's `?key=` alike."""
    created = api.client.post("/v1/keys", json={"role": "ingest"}, headers=api.admin).json()
    secret = created["secret"]
    session = start(api, api.app, **{**KIOSK, "kind": "photo"}, resource_id="booth-1")
    path = f"/v1/sessions/{session['id']}"
    assert api.client.get(path, headers={"Authorization": f"Bearer {secret}"}).status_code == 200

    revoked = api.client.delete(f"/v1/keys/{created['id']}", headers=api.admin)
    assert revoked.status_code == 200, revoked.text

    for response in (
        api.client.get(path, headers={"X-API-Key": secret}),
        api.client.get(path, headers={"Authorization": f"Bearer {secret}"}),
        api.client.post(f"{path}/exit", params={"key": secret}, content=b"{}"),
        api.client.post(f"{path}/heartbeat", json={}, headers={"X-API-Key": secret}),
    ):
        assert_error(response, 401, "unauthorized")
    assert api.client.get(path, headers=api.app).json()["status"] == "active"


def test_a_revoked_admin_key_can_no_longer_issue_or_revoke_keys(api: Api) -> None:
    second = api.client.post("/v1/keys", json={"role": "admin"}, headers=api.admin).json()
    headers = {"X-API-Key": second["secret"]}
    assert api.client.get("/v1/keys", headers=headers).status_code == 200  # in use

    assert api.client.delete(f"/v1/keys/{second['id']}", headers=api.admin).status_code == 200
    issue = api.client.post("/v1/keys", json={"role": "admin"}, headers=headers)
    revoke = api.client.delete(f"/v1/keys/{second['id']}", headers=headers)
    settings = api.client.put("/v1/settings", json={"overdraft": "hard"}, headers=headers)

    assert_error(issue, 401, "unauthorized")
    assert_error(revoke, 401, "unauthorized")
    assert_error(settings, 401, "unauthorized")
    assert api.client.get("/v1/settings", headers=api.admin).json()["overdraft"] == "soft"


def test_a_key_whose_tenant_is_gone_is_unauthorized_not_a_500(api: Api) -> None:
    """A key row left behind by a tenant that no longer exists names no one."""
    key, secret = ApiKey.issue("orphan-key", str(uuid.uuid4()), Role.ADMIN, NOW)
    api.run(api.container.storage.api_keys().add, key)

    for headers in ({"X-API-Key": secret}, {"Authorization": f"Bearer {secret}"}):
        assert_error(api.client.get("/v1/settings", headers=headers), 401, "unauthorized")


# --- Role escalation ------------------------------------------------------------------------------

# Admin-only routes test_access_api's role table does not list (reports, erasure, plans, funnels,
# snapshots, keys): ingest and app keys get 403 on each, before anything about the body.
ADMIN_ONLY: list[tuple[str, str, Any]] = [
    ("get", "/v1/reports/resources", None),
    ("get", "/v1/reports/active", None),
    ("get", "/v1/reports/usage", None),
    ("get", "/v1/reports/daily", None),
    ("get", "/v1/reports/performance", None),
    ("get", "/v1/reports/trials", None),
    ("get", "/v1/reports/cost-model", None),
    ("get", "/v1/reports/funnel/booth", None),
    ("delete", "/v1/subjects/ana", None),
    ("delete", "/v1/resources/webinar-1", None),
    ("get", "/v1/plans", None),
    ("get", "/v1/plans/free", None),
    ("get", "/v1/accounts/ana/subscriptions", None),
    ("get", "/v1/funnels", None),
    ("put", "/v1/funnels/booth", {}),
    ("delete", "/v1/funnels/booth", None),
    ("put", "/v1/livekit/accounts/APIxyz", {"url": None}),
    ("get", "/v1/snapshots", None),
    ("post", "/v1/snapshots/batch", {"snapshots": []}),
    ("delete", "/v1/keys/anything", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ONLY)
def test_an_ingest_or_app_key_is_forbidden_every_admin_route(
    api: Api, method: str, path: str, body: Any
) -> None:
    for headers in (api.ingest, api.app):
        kwargs = {} if body is None else {"json": body}
        response = api.client.request(method, path, headers=headers, **kwargs)
        assert_error(response, 403, "forbidden")


def test_an_admin_cannot_issue_a_key_for_another_tenant(api: Api) -> None:
    """The tenant of a new key is the caller's; a body naming another is refused, not obeyed."""
    for extra in ({"tenant": "globex"}, {"tenant_id": "globex"}):
        response = api.client.post("/v1/keys", json={"role": "admin", **extra}, headers=api.admin)
        assert response.status_code == 422, response.text
    globex_admin = issued(api, "globex", "admin")
    assert len(key_ids(api, globex_admin)) == 2  # its app key and this one


# --- Malformed credentials ----------------------------------------------------------------------

MALFORMED: list[Any] = [
    {"X-API-Key": ""},
    {"X-API-Key": "   "},
    {"X-API-Key": "sm_" + "a" * 100_000},
    {"X-API-Key": "ключ-ñ".encode()},
    {"X-API-Key": b"sm_\x00\x01\x7f"},
    {"X-API-Key": b"\xff\xfe\xfd"},
    {"Authorization": "Bearer"},
    {"Authorization": "Bearer    "},
    {"Authorization": "Basic dXNlcjpwYXNzd29yZA=="},
    {"Authorization": ""},
    {"X-Api-Key-Typo": "sm_whatever"},
]


@pytest.mark.parametrize("headers", MALFORMED, ids=range(len(MALFORMED)))
def test_a_malformed_credential_is_unauthorized_in_the_envelope(api: Api, headers: Any) -> None:
    for method, path in (("get", "/v1/sessions"), ("post", "/v1/events/batch")):
        response = api.client.request(method, path, headers=headers, json={"events": []})
        assert_error(response, 401, "unauthorized")


def test_a_near_miss_of_a_real_key_is_unauthorized(api: Api) -> None:
    """Keys are compared exactly: a prefix, an extension, another case or the key without its
    scheme in Authorization name no key."""
    secret = api.admin["X-API-Key"]
    for headers in (
        {"X-API-Key": secret[:-1]},
        {"X-API-Key": secret + "0"},
        {"X-API-Key": secret.upper()},
        {"X-API-Key": secret.swapcase()},
        {"Authorization": secret},
        {"Authorization": f"Token {secret}"},
    ):
        assert_error(api.client.get("/v1/settings", headers=headers), 401, "unauthorized")


def test_the_bearer_scheme_is_case_insensitive(api: Api) -> None:
    """RFC 9110: the auth scheme is case-insensitive; a client saying `bearer` is not refused."""
    secret = api.app["X-API-Key"]
    for scheme in ("Bearer", "bearer", "BEARER"):
        response = api.client.get("/v1/sessions", headers={"Authorization": f"{scheme} {secret}"})
        assert response.status_code == 200, (scheme, response.text)


def test_a_key_in_the_query_string_opens_only_the_exit(api: Api) -> None:
    """URLs end up in logs: only the beacon's exit takes `?key=`; everywhere else it is as if
    no key were sent (401)."""
    session = start(api, api.app, kind="photo", resource_id="booth-1")
    path = f"/v1/sessions/{session['id']}"
    secret = api.app["X-API-Key"]
    admin = api.admin["X-API-Key"]

    for method, url, key in [
        ("get", "/v1/sessions", secret),
        ("get", path, secret),
        ("post", f"{path}/heartbeat", secret),
        ("get", "/v1/settings", admin),
        ("get", "/v1/keys", admin),
        ("post", "/v1/sessions", secret),
    ]:
        for name in ("key", "api_key", "X-API-Key"):
            response = api.client.request(method, url, params={name: key}, json={})
            assert_error(response, 401, "unauthorized")
    exit = api.client.post(f"{path}/exit", params={"key": secret}, content=b"{}")
    assert exit.status_code == 200, exit.text


def test_a_wrong_key_in_the_header_is_not_replaced_by_one_in_the_url_or_bearer(api: Api) -> None:
    """The header wins: a bad X-API-Key is 401 even when a good key rides along elsewhere, and
    another tenant's header key cannot borrow acme's `?key=` to end acme's session."""
    session = start(api, api.app, kind="photo", resource_id="booth-1")
    path = f"/v1/sessions/{session['id']}"
    good = api.app["X-API-Key"]

    unknown = api.client.get(
        path, headers={"X-API-Key": "sm_nope", "Authorization": f"Bearer {good}"}
    )
    borrowed = api.client.post(
        f"{path}/exit", params={"key": good}, json={}, headers=api.other_tenant
    )
    unknown_and_query = api.client.post(
        f"{path}/exit", params={"key": good}, json={}, headers={"X-API-Key": "sm_nope"}
    )

    assert_error(unknown, 401, "unauthorized")
    assert_error(borrowed, 404, "not_found")
    assert_error(unknown_and_query, 401, "unauthorized")
    assert api.client.get(path, headers=api.app).json()["status"] == "active"


def test_two_key_headers_never_act_with_the_stronger_of_them(api: Api) -> None:
    """Two X-API-Key headers (a proxy adding one, a client sending another) must not lift an
    ingest key to admin, nor mix two tenants: one key decides, never the admin's answer to an
    ingest key, never a 500."""
    ingest, admin = api.ingest["X-API-Key"], api.admin["X-API-Key"]
    globex_admin = issued(api, "globex", "admin")["X-API-Key"]
    acme_keys = key_ids(api, api.admin)
    for first, second, expected in (
        (ingest, admin, 403),
        ("sm_nope", admin, 401),
        (globex_admin, admin, 200),
    ):
        headers = [(b"x-api-key", first.encode()), (b"x-api-key", second.encode())]
        status, body = api.run(raw_get, api.client.app, "/v1/keys", headers)
        assert status == expected, body
        parsed = json.loads(body)
        if status == 200:  # globex's admin: globex's keys, none of acme's
            assert not {k["id"] for k in parsed["items"]} & acme_keys
        else:
            assert parsed["error"] == {401: "unauthorized", 403: "forbidden"}[status]


# --- What moves money or limits, written with an ingest key ---------------------------------------


def test_an_ingest_key_adds_no_meters_by_events_to_a_kind_a_plan_limits(api: Api) -> None:
    """The rated kinds' meters are refused an ingest key; a plan-limited kind's are too (the
    contract names both), even when the plan is not the default one."""
    plan = {
        "default": False,
        "limits": {"sessions_per_resource": 2, "session_kinds": ["mock_exam"]},
    }
    assert api.client.put("/v1/plans/pro", json=plan, headers=api.admin).status_code == 200
    session = start(api, api.app, kind="mock_exam", resource_id="exam-1")
    events = [
        {"session_id": session["id"], "sequence_no": 1, "type": "tap", "at": session["started_at"]},
        {
            "session_id": session["id"],
            "sequence_no": 2,
            "type": "analysis",
            "at": session["started_at"],
            "meters": {"analysis": 50},
        },
    ]

    started = api.client.post(
        "/v1/sessions",
        json={"kind": "mock_exam", "resource_id": "exam-2", "subject_id": "ana"},
        headers=api.ingest,
    )
    sent = api.client.post("/v1/events/batch", json={"events": events}, headers=api.ingest)

    assert_error(started, 403, "forbidden")
    assert sent.status_code == 200 and sent.json()["inserted"] == 1, sent.text
    assert [e["error"].split(":")[0] for e in sent.json()["errors"]] == ["forbidden"]
    read = api.client.get(f"/v1/sessions/{session['id']}", headers=api.app).json()
    assert read["usage"] == {}, read


def test_a_rate_of_zero_per_minute_that_prices_meters_still_bills_the_kind(api: Api) -> None:
    """`credits_per_minute: 0` with meter rates moves money by the meters: it is a rate."""
    rate = {"credits_per_minute": 0, "meter_rates": {"analysis": {"per": 1, "credits": 5}}}
    assert api.client.put("/v1/rates/coaching", json=rate, headers=api.admin).status_code == 200
    body = {"kind": "coaching", "resource_id": "room-1", "subject_id": "ana"}

    started = api.client.post("/v1/sessions", json=body, headers=api.ingest)
    session = start(api, api.app, **body)
    left = api.client.post(
        f"/v1/sessions/{session['id']}/exit", json={"usage": {"analysis": 1000}}, headers=api.ingest
    )

    assert_error(started, 403, "forbidden")
    assert_error(left, 403, "forbidden")
    assert api.client.get(f"/v1/sessions/{session['id']}", headers=api.app).json()["usage"] == {}


def test_an_ingest_key_may_not_end_a_session_whose_kind_got_a_rate_after_it_started(
    api: Api,
) -> None:
    """The rule is the kind's now, not at the start: once priced, its exit (which charges) is
    the back end's."""
    session = start(
        api, api.ingest, kind="tutoring", resource_id="room-1", subject_id=None, client_key="k"
    )
    rate = {"credits_per_minute": 3}
    assert api.client.put("/v1/rates/tutoring", json=rate, headers=api.admin).status_code == 200

    heartbeat = api.client.post(
        f"/v1/sessions/{session['id']}/heartbeat", json={}, headers=api.ingest
    )
    left = api.client.post(f"/v1/sessions/{session['id']}/exit", json={}, headers=api.ingest)

    assert_error(heartbeat, 403, "forbidden")
    assert_error(left, 403, "forbidden")


# --- One session id in two tenants ------------------------------------------------------------------


def test_a_session_id_both_tenants_use_keeps_each_tenants_events_meters_and_charges_apart(
    api: Api,
) -> None:
    """Client-generated ids may collide across tenants (or be copied on purpose). Everything
    that hangs off a session by its id — events, meters, sales, charges — must join on the
    tenant too, in every read and every report."""
    globex_admin = issued(api, "globex", "admin")
    session_id = str(uuid.uuid4())
    body = {"id": session_id, "kind": "kiosk", "resource_id": "shared-1", "subject_id": "ana",
            "started_at": ts(0)}  # fmt: skip
    rate = {"credits_per_minute": 5}
    assert api.client.put("/v1/rates/kiosk", json=rate, headers=globex_admin).status_code == 200
    mine = api.client.post("/v1/sessions", json=body, headers=api.app)
    theirs = api.client.post("/v1/sessions", json=body, headers=api.other_tenant)
    assert (mine.status_code, theirs.status_code) == (201, 201), (mine.text, theirs.text)
    events = [
        {"session_id": session_id, "sequence_no": n, "type": "tap", "at": ts(n), "label": "red",
         "meters": {"prints": 2}}
        for n in (1, 2, 3)
    ]  # fmt: skip
    sent = api.client.post("/v1/events/batch", json={"events": events}, headers=api.other_tenant)
    assert sent.json()["inserted"] == 3, sent.text
    sale = api.client.post(
        "/v1/sales", json=a_sale("s1", session_id, occurred_at=ts(4)), headers=api.other_tenant
    )
    assert sale.status_code == 201, sale.text
    left = api.client.post(
        f"/v1/sessions/{session_id}/exit", json={"at": ts(10)}, headers=api.other_tenant
    )
    assert left.status_code == 200 and left.json()["charge"]["credits"] == 50, left.text

    read = api.client.get(f"/v1/sessions/{session_id}", headers=api.app).json()
    listed = api.client.get(f"/v1/sessions/{session_id}/events", headers=api.app).json()
    counted = api.client.get(f"/v1/sessions/{session_id}/distribution", headers=api.app).json()
    stats = api.client.get("/v1/accounts/ana/usage-stats", headers=api.app).json()
    ledger = api.client.get("/v1/accounts/ana/credits/ledger", headers=api.app).json()
    sales = api.client.get("/v1/sales", params={"session_id": session_id}, headers=api.app).json()
    second = api.client.post(
        "/v1/events/batch",
        json={"events": [{**events[0], "meters": {"prints": 1}}]},
        headers=api.app,
    )

    assert (read["status"], read["event_count"], read["usage"], read["charge"]) == (
        "active", 0, {}, None
    ), read  # fmt: skip
    assert listed["items"] == [] and counted["total"] == 0, (listed, counted)
    assert (stats["total_events"], stats["meters"], stats["total_credits_consumed"]) == (0, {}, 0)
    assert ledger["items"] == [] and sales["items"] == [], (ledger, sales)
    assert second.json()["inserted"] == 1, second.text  # not a duplicate of globex's number 1
    error = an_error("e1", session_id=session_id, context={"email": "ana@globex.example"})
    assert api.client.post("/v1/errors", json=error, headers=api.other_tenant).status_code == 201
    erased = api.client.delete("/v1/subjects/ana", headers=api.admin).json()
    assert erased == {"sessions": 1, "events": 1, "errors": 0, "sales": 0}, erased
    theirs_now = api.client.get(f"/v1/sessions/{session_id}", headers=api.other_tenant).json()
    assert theirs_now["subject_id"] == "ana", theirs_now
    their_errors = api.client.get("/v1/errors", headers=api.other_tenant).json()["items"]
    assert [e["context"] for e in their_errors] == [{"email": "ana@globex.example"}]
    deleted = api.client.delete("/v1/resources/shared-1", headers=api.admin).json()
    assert (deleted["sessions"], deleted["events"]) == (1, 1), deleted
    kept = api.client.get(f"/v1/sessions/{session_id}/events", headers=api.other_tenant).json()
    assert [e["label"] for e in kept["items"]] == ["red"] * 3, kept


def test_a_scope_of_wildcard_characters_names_only_a_resource_of_that_name(api: Api) -> None:
    """A scope is a list of names, never a pattern: `*`, `%`, `.*` open no other resource."""
    for pattern in ("*", "%", ".*", "kiosk-%", "kiosk-*"):
        key = scoped_key(api, pattern)
        refused = api.client.post(
            "/v1/sessions", json={**KIOSK, "resource_id": "kiosk-1"}, headers=key
        )
        device = api.client.post("/v1/errors", json=an_error(f"e-{pattern}"), headers=key)
        assert_error(refused, 403, "forbidden")
        assert_error(device, 403, "forbidden")


def test_an_admin_revoking_its_own_key_is_refused_from_the_next_request(api: Api) -> None:
    second = api.client.post("/v1/keys", json={"role": "admin"}, headers=api.admin).json()
    headers = {"X-API-Key": second["secret"]}

    revoked = api.client.delete(f"/v1/keys/{second['id']}", headers=headers)
    after = api.client.get("/v1/keys", headers=headers)

    assert revoked.status_code == 200, revoked.text
    assert_error(after, 401, "unauthorized")


def test_an_ingest_key_replaying_the_exit_of_a_charged_session_is_forbidden(api: Api) -> None:
    """The replay of an exit answers the session with its charge: for a rated kind that is the
    back end's to ask, as the first exit was."""
    rate = {"credits_per_minute": 2}
    assert api.client.put("/v1/rates/counseling", json=rate, headers=api.admin).status_code == 200
    session = start(api, api.app, kind="counseling", started_at=ts(0))
    ended(api, api.app, session, ts(5))

    replay = api.client.post(f"/v1/sessions/{session['id']}/exit", json={}, headers=api.ingest)

    assert_error(replay, 403, "forbidden")
