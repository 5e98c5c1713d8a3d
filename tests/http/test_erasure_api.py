"""DELETE /v1/subjects/{id} and DELETE /v1/resources/{id} through the real app on every store:
admins only, idempotent, counted; the person is gone from every answer and every export, and
the books still balance."""

from datetime import UTC, datetime, timedelta
from typing import Any

from application.transfer.export_tenant import ExportTenantQuery
from tests.app_client import Api
from tests.http.envelope import assert_error, invalid_fields

STARTED = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
PERSONAL = {
    "ip": "203.0.113.7",
    "user_agent": "Firefox/140",
    "referrer": "https://ads.example/ana",
    "email": "ana@example.com",
}


def ts(minutes: float) -> str:
    return (STARTED + timedelta(minutes=minutes)).isoformat()


def a_visit(api: Api, subject: str = "ana", resource: str = "webinar-1") -> dict[str, Any]:
    """A charged session of the subject, with events, an error and a sale."""
    session = api.start(
        kind="counseling",
        subject_id=subject,
        resource_id=resource,
        started_at=ts(0),
        attributes={**PERSONAL, "plan": "pro"},
    )
    events = [
        {
            "session_id": session["id"],
            "sequence_no": n,
            "type": "answer",
            "at": ts(1),
            "label": "q1",
            "data": {"text": "my address is 12 Main St"},
        }
        for n in (1, 2)
    ]
    sent = api.client.post("/v1/events/batch", json={"events": events}, headers=api.app)
    assert sent.status_code == 200, sent.text
    error = {
        "id": f"crash-{session['id']}",
        "at": ts(2),
        "device_id": "kiosk-1",
        "session_id": session["id"],
        "app_version": "1.4.2",
        "severity": "error",
        "type": "PrinterError",
        "message": "paper jam",
        "context": {"customer": "ana@example.com"},
    }
    assert api.client.post("/v1/errors", json=error, headers=api.app).status_code == 201
    sale = {
        "id": f"sale-{session['id']}",
        "session_id": session["id"],
        "device_id": "kiosk-1",
        "occurred_at": ts(3),
        "currency": "KRW",
        "amounts": {"gross": "20000", "discount": "0", "tax": "0", "net": "20000"},
        "payment_method": "card",
        "attributes": {"email": "ana@example.com", "store": "gangnam"},
    }
    assert api.client.post("/v1/sales", json=sale, headers=api.app).status_code == 201
    ended = api.client.post(
        f"/v1/sessions/{session['id']}/exit", json={"at": ts(10)}, headers=api.app
    )
    assert ended.status_code == 200, ended.text
    return dict(ended.json())


def set_up_billing(api: Api, subject: str = "ana") -> None:
    settings = {"personal_attributes": ["email"]}
    assert api.client.put("/v1/settings", json=settings, headers=api.admin).status_code == 200
    rate = {"credits_per_minute": 2}
    assert api.client.put("/v1/rates/counseling", json=rate, headers=api.admin).status_code == 200
    grant = {"amount": 100, "reason": "welcome", "idempotency_key": f"welcome-{subject}"}
    granted = api.client.post(
        f"/v1/accounts/{subject}/credits/grants", json=grant, headers=api.admin
    )
    assert granted.status_code == 201, granted.text


def exported(api: Api) -> str:
    async def export() -> str:
        archive = await api.container.use_cases.export_tenant()(ExportTenantQuery("acme"))
        return "\n".join([line async for line in archive.lines])

    return api.run(export)


def test_only_an_admin_erases_a_subject(api: Api) -> None:
    for headers in (api.app, api.ingest):
        assert_error(api.client.delete("/v1/subjects/ana", headers=headers), 403, "forbidden")
        assert_error(
            api.client.delete("/v1/resources/webinar-1", headers=headers), 403, "forbidden"
        )
    assert_error(api.client.delete("/v1/subjects/ana"), 401, "unauthorized")


def test_an_erased_subject_is_gone_from_every_answer_and_export_and_its_books_balance(
    api: Api,
) -> None:
    set_up_billing(api)
    visit = a_visit(api)
    kept = api.start(subject_id="bo", attributes={"ip": "198.51.100.1"})

    erased = api.client.delete("/v1/subjects/ana", headers=api.admin)
    again = api.client.delete("/v1/subjects/ana", headers=api.admin)
    unknown = api.client.delete("/v1/subjects/never-seen", headers=api.admin)

    assert erased.status_code == 200, erased.text
    assert erased.json() == {"sessions": 1, "events": 2, "errors": 1, "sales": 1}
    zero = {"sessions": 0, "events": 0, "errors": 0, "sales": 0}
    assert again.json() == zero and unknown.json() == zero
    session = api.client.get(f"/v1/sessions/{visit['id']}", headers=api.app).json()
    pseudonym = session["subject_id"]
    assert pseudonym.startswith("erased:") and len(pseudonym) == len("erased:") + 32
    assert session["attributes"] == {"plan": "pro"}
    assert (session["started_at"], session["ended_at"], session["charge"]) == (
        visit["started_at"],
        visit["ended_at"],
        visit["charge"],
    )
    by_subject = api.client.get("/v1/sessions?subject_id=ana", headers=api.app).json()
    assert by_subject["items"] == []
    events = api.client.get(f"/v1/sessions/{visit['id']}/events", headers=api.app).json()
    assert [(e["type"], e["label"], e["data"]) for e in events["items"]] == [
        ("answer", None, None)
    ] * 2
    (error,) = api.client.get("/v1/errors", headers=api.app).json()["items"]
    assert error.get("context") is None
    (sale,) = api.client.get("/v1/sales", headers=api.app).json()["items"]
    assert sale["attributes"] == {"store": "gangnam"} and sale["amounts"]["net"] == "20000"
    # The books balance under the pseudonym; the subject has none left.
    credits = api.client.get(f"/v1/accounts/{pseudonym}/credits", headers=api.app).json()
    ledger = api.client.get(f"/v1/accounts/{pseudonym}/credits/ledger", headers=api.app).json()
    assert credits["balance"] == 100 - visit["charge"]["credits"]
    assert credits["balance"] == sum(e["amount"] for e in ledger["items"])
    gone = api.client.get("/v1/accounts/ana/credits/ledger", headers=api.app).json()
    assert gone["items"] == []
    # An export brings none of it back; someone else's stays.
    archive = exported(api)
    for personal in ('"ana"', *PERSONAL.values(), "12 Main St"):
        assert personal not in archive
    assert "198.51.100.1" in archive and kept["subject_id"] == "bo"


def test_a_deleted_resource_leaves_only_its_billed_sessions_erased(api: Api) -> None:
    set_up_billing(api)
    billed = a_visit(api, resource="webinar-9")
    free = api.start(resource_id="webinar-9", subject_id="bo", attributes={"ip": "198.51.100.1"})
    other = api.start(resource_id="webinar-1", subject_id="bo")

    deleted = api.client.delete("/v1/resources/webinar-9", headers=api.admin)
    again = api.client.delete("/v1/resources/webinar-9", headers=api.admin)

    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {
        "sessions": 1,
        "events": 0,
        "rollups": 0,
        "erased": {"sessions": 1, "events": 2, "errors": 1, "sales": 1},
    }
    zero = {"sessions": 0, "events": 0, "errors": 0, "sales": 0}
    assert again.json() == {"sessions": 0, "events": 0, "rollups": 0, "erased": zero}
    assert_error(api.client.get(f"/v1/sessions/{free['id']}", headers=api.app), 404, "not_found")
    kept = api.client.get(f"/v1/sessions/{billed['id']}", headers=api.app).json()
    assert kept["charge"] == billed["charge"] and kept["attributes"] == {"plan": "pro"}
    assert api.client.get(f"/v1/sessions/{other['id']}", headers=api.app).status_code == 200
    # The subject asked for nothing: the session stays on its account, whose balance is whole.
    assert kept["subject_id"] == "ana"
    credits = api.client.get("/v1/accounts/ana/credits", headers=api.app).json()
    assert credits["balance"] == 100 - billed["charge"]["credits"]


def test_personal_attributes_and_session_retention_are_settings(api: Api) -> None:
    def put(**body: Any) -> Any:
        return api.client.put("/v1/settings", json=body, headers=api.admin)

    changed = put(personal_attributes=["email", "phone"], session_retention_days=30)
    assert changed.status_code == 200, changed.text
    shown = api.client.get("/v1/settings", headers=api.admin).json()
    assert (shown["personal_attributes"], shown["session_retention_days"]) == (
        ["email", "phone"],
        30,
    )
    assert put(session_retention_days=None).json()["session_retention_days"] is None
    assert invalid_fields(put(personal_attributes=["an email"])) == ["personal_attributes"]
    assert invalid_fields(put(personal_attributes=[3])) == ["personal_attributes"]
    assert invalid_fields(put(personal_attributes=["x"] * 101)) == ["personal_attributes"]
    assert invalid_fields(put(session_retention_days=0)) == ["session_retention_days"]
