"""What a hostile review of scoped keys and erasure got through, each kept as a regression: a
device's key hanging records on another resource's session or refunding another device's sale,
and erasures that left free-form exit text, looped on an id that looks like a pseudonym, or kept
a grant's idempotency key."""

from typing import Any

from domain.erasure import Pseudonyms
from tests.app_client import Api
from tests.http.envelope import assert_error
from tests.http.test_erasure_api import exported, set_up_billing, ts
from tests.http.test_scoped_keys_api import KIOSK, scoped_key
from tests.http.test_telemetry_api import a_metric, a_sale, an_error


def _post(api: Api, headers: dict[str, str], path: str, body: Any) -> Any:
    return api.client.post(path, json=body, headers=headers)


# --- Scoped device keys -------------------------------------------------------------------------


def test_a_scoped_key_cannot_hang_its_sale_on_another_resources_session(api: Api) -> None:
    key = scoped_key(api, "kiosk-1")
    theirs = api.start(**KIOSK, resource_id="kiosk-18")  # another booth's visitor

    sale = _post(api, key, "/v1/sales", a_sale("s-theirs", theirs["id"]))  # device kiosk-1: mine

    assert_error(sale, 403, "forbidden")


def test_a_scoped_key_cannot_hang_its_error_or_metric_on_another_resources_session(
    api: Api,
) -> None:
    key = scoped_key(api, "kiosk-1")
    theirs = api.start(**KIOSK, resource_id="kiosk-18")

    error = _post(api, key, "/v1/errors", an_error("e-theirs", session_id=theirs["id"]))
    metric = _post(api, key, "/v1/performance", a_metric("m-theirs", 5, session_id=theirs["id"]))

    assert_error(error, 403, "forbidden")
    assert_error(metric, 403, "forbidden")


def test_a_scoped_key_cannot_refund_another_devices_sale(api: Api) -> None:
    theirs = api.start(**KIOSK, resource_id="kiosk-18")
    sold = _post(api, api.app, "/v1/sales", a_sale("s18", theirs["id"], device_id="kiosk-18"))
    assert sold.status_code == 201, sold.text
    key = scoped_key(api, "kiosk-1")
    mine = _post(api, key, "/v1/sessions", {**KIOSK, "resource_id": "kiosk-1"}).json()

    refund = _post(
        api,
        key,
        "/v1/sales",
        a_sale("r18", mine["id"], status="refunded", refund_of="s18"),
    )

    assert_error(refund, 403, "forbidden")


def test_a_scoped_keys_sale_keeps_another_resources_session_from_deletion(api: Api) -> None:
    """The harm of the first finding: the other resource's visit survives its deletion."""
    key = scoped_key(api, "kiosk-1")
    theirs = api.start(**KIOSK, resource_id="kiosk-18", attributes={"ip": "203.0.113.9"})
    _post(api, key, "/v1/sales", a_sale("s-pin", theirs["id"]))

    deleted = api.client.delete("/v1/resources/kiosk-18", headers=api.admin)

    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["sessions"] == 1, deleted.json()
    gone = api.client.get(f"/v1/sessions/{theirs['id']}", headers=api.app)
    assert gone.status_code == 404, gone.text


# --- Erasure ------------------------------------------------------------------------------------


def test_erasure_clears_the_free_form_exit_summary_and_reason(api: Api) -> None:
    session = api.start(subject_id="ana", started_at=ts(0))
    ended = _post(
        api,
        api.app,
        f"/v1/sessions/{session['id']}/exit",
        {
            "at": ts(5),
            "reason": "ana@example.com closed the tab",
            "summary": {"payment": {"card_holder": "Ana Lima", "email": "ana@example.com"}},
        },
    )
    assert ended.status_code == 200, ended.text

    assert api.client.delete("/v1/subjects/ana", headers=api.admin).status_code == 200

    stored = api.client.get(f"/v1/sessions/{session['id']}", headers=api.app).json()
    assert stored["summary"] is None, stored["summary"]
    assert "ana@example.com" not in exported(api)


def test_a_subject_whose_id_looks_like_a_pseudonym_is_still_erased(api: Api) -> None:
    """A client may name a subject `erased:…` (or an admin erase a pseudonym again): it once kept
    the id as its own pseudonym, so its sessions still matched and the erasure looped for ever
    (checked first, so that this test fails instead of hanging)."""
    subject = "erased:ana-lima@example.com"
    assert Pseudonyms().of(subject) != subject
    session = api.start(subject_id=subject)

    assert api.client.delete(f"/v1/subjects/{subject}", headers=api.admin).status_code == 200

    stored = api.client.get(f"/v1/sessions/{session['id']}", headers=api.app).json()
    assert stored["subject_id"] != subject
    listed = api.client.get("/v1/sessions", params={"subject_id": subject}, headers=api.app)
    assert listed.json()["items"] == []


def test_a_grant_after_erasure_is_not_swallowed_by_the_erased_subjects_idempotency_key(
    api: Api,
) -> None:
    set_up_billing(api)  # grants ana 100 credits with idempotency key "welcome-ana"
    assert api.client.delete("/v1/subjects/ana", headers=api.admin).status_code == 200

    # Ana signs up again; the product grants her welcome credits as it always does.
    grant = {"amount": 100, "reason": "welcome", "idempotency_key": "welcome-ana"}
    again = _post(api, api.admin, "/v1/accounts/ana/credits/grants", grant)

    balance = api.client.get("/v1/accounts/ana/credits", headers=api.app).json()["balance"]
    assert (again.status_code, balance) == (201, 100), again.text
