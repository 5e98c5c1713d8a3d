"""Kiosk telemetry through the real app on every store: errors, performance metrics and sales
in, each once by its id; lists and reports out; bad items refused by name, the rest stored."""

import base64
import json
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from tests.app_client import Api
from tests.http.envelope import assert_error, invalid_fields

NOW = datetime.now(UTC).replace(microsecond=0)


def ts(minutes: float) -> str:
    return (NOW - timedelta(hours=1) + timedelta(minutes=minutes)).isoformat()


def an_error(id: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": id,
        "at": ts(1),
        "device_id": "kiosk-1",
        "app_version": "1.4.2",
        "severity": "error",
        "type": "PrinterError",
        "message": "paper jam",
        **fields,
    }


def a_metric(id: str, ms: float, **fields: Any) -> dict[str, Any]:
    return {
        "id": id,
        "device_id": "kiosk-1",
        "app_version": "1.4.2",
        "type": "capture",
        "started_at": ts(2),
        "duration_ms": ms,
        "success": True,
        **fields,
    }


def a_sale(id: str, session_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": id,
        "session_id": session_id,
        "device_id": "kiosk-1",
        "occurred_at": ts(3),
        "currency": "KRW",
        "amounts": {"gross": "20000", "discount": "2000", "tax": "0", "net": "18000"},
        "payment_method": "card",
        **fields,
    }


def test_an_error_is_stored_once_with_its_fingerprint_and_an_id_with_other_content_conflicts(
    api: Api,
) -> None:
    session = api.start(kind="kiosk", resource_id="kiosk-1", subject_id=None, client_key="k1")
    body = an_error(
        "e1",
        session_id=session["id"],
        impact={"sale_lost": True, "estimated_loss": {"amount": "15000.5", "currency": "KRW"}},
    )

    first = api.client.post("/v1/errors", json=body, headers=api.app)
    again = api.client.post("/v1/errors", json=body, headers=api.app)
    other = api.client.post("/v1/errors", json={**body, "message": "other"}, headers=api.app)

    assert first.status_code == 201, first.text
    assert again.status_code == 200 and again.json() == first.json()
    assert_error(other, 409, "conflict")
    stored = first.json()
    assert len(stored["fingerprint"]) == 32 and stored["session_id"] == session["id"]
    assert stored["impact"]["estimated_loss"] == {"amount": "15000.5", "currency": "KRW"}


def test_a_batch_of_errors_stores_the_good_ones_and_names_what_is_wrong_with_the_others(
    api: Api,
) -> None:
    session = api.start(kind="kiosk", resource_id="kiosk-1", subject_id=None, client_key="k1")
    api.client.post(f"/v1/sessions/{session['id']}/exit", json={}, headers=api.app)
    no_device = {k: v for k, v in an_error("bad-1").items() if k != "device_id"}
    batch = [
        an_error("boot", type="StartupError"),  # before any session exists
        no_device,
        an_error("bad-2", session_id="3f2b8c1e-9d4a-4e6b-8f1a-2c3d4e5f6a7b"),
        an_error("bad-3", stack_trace="x" * (64 * 1024 + 1)),
        an_error("bad-4", breadcrumbs=[{"at": ts(0), "type": "tap"}] * 51),
        an_error("after-end", session_id=session["id"], at=ts(59)),  # a crash on the way out
        an_error("bad-5", at=(NOW + timedelta(minutes=30)).isoformat()),
        an_error("boot", type="StartupError"),  # resent in the same batch
    ]

    result = api.client.post("/v1/errors/batch", json={"errors": batch}, headers=api.app)

    assert result.status_code == 200, result.text
    body = result.json()
    assert (body["inserted"], body["duplicates"], body["failed"]) == (2, 1, 5)
    assert [(e["index"], e["error"].split(":")[:2]) for e in body["errors"]] == [
        (1, ["validation_error", " device_id"]),
        (2, ["validation_error", " session_id"]),
        (3, ["validation_error", " stack_trace"]),
        (4, ["validation_error", " breadcrumbs"]),
        (6, ["validation_error", " at"]),
    ]
    listed = api.client.get("/v1/errors", headers=api.admin).json()["items"]
    assert sorted(e["id"] for e in listed) == ["after-end", "boot"]
    too_many = api.client.post(
        "/v1/errors/batch",
        json={"errors": [an_error(f"x{i}") for i in range(101)]},
        headers=api.app,
    )
    assert_error(too_many, 413, "payload_too_large")


def test_the_same_fault_on_two_builds_groups_as_one_in_the_error_report(api: Api) -> None:
    def jam(
        id: str, device: str, version: str, line: int, loss: str, currency: str
    ) -> dict[str, Any]:
        trace = f'File "/opt/kiosk/{version}/printer.py", line {line}, in feed\nPrinterError: jam 0x7f3a9c'
        impact = {"sale_lost": True, "estimated_loss": {"amount": loss, "currency": currency}}
        return an_error(id, device_id=device, app_version=version, stack_trace=trace, impact=impact)

    errors = [
        jam("a", "kiosk-1", "1.4.2", 120, "0.1", "KRW"),
        jam("b", "kiosk-2", "1.5.0", 131, "0.2", "KRW"),
        jam("c", "kiosk-2", "1.5.0", 131, "3.5", "USD"),
        an_error("d", type="CameraError"),
    ]
    api.client.post("/v1/errors/batch", json={"errors": errors}, headers=api.app)

    report = api.client.get(
        "/v1/reports/errors", params={"from": ts(0), "to": ts(60)}, headers=api.admin
    )
    listed = api.client.get("/v1/errors", params={"app_version": "1.5.0"}, headers=api.admin)

    assert report.status_code == 200, report.text
    jams, camera = report.json()["items"]
    assert (jams["count"], jams["devices"], jams["sales_lost"]) == (3, 2, 3)
    assert jams["app_versions"] == {"1.4.2": 1, "1.5.0": 2}
    assert jams["estimated_loss"] == {"KRW": "0.3", "USD": "3.5"}
    assert camera["count"] == 1
    assert [e["id"] for e in listed.json()["items"]] == ["c", "b"]
    assert api.client.get("/v1/reports/errors", headers=api.other_tenant).status_code == 403


def test_the_error_report_per_day_counts_the_days_of_the_tenants_zone(api: Api) -> None:
    settings = api.client.put("/v1/settings", json={"time_zone": "Asia/Seoul"}, headers=api.admin)
    assert settings.status_code == 200, settings.text
    seoul = ZoneInfo("Asia/Seoul")
    yesterday = datetime.now(seoul).date() - timedelta(days=1)
    # Yesterday's midnight in Seoul, 15:00 UTC the day before: the same UTC day on both sides.
    midnight = datetime.combine(yesterday, time(), seoul)

    def around_midnight(id: str, minutes: int, **fields: Any) -> dict[str, Any]:
        return an_error(id, at=(midnight + timedelta(minutes=minutes)).isoformat(), **fields)

    jam = {"stack_trace": 'File "printer.py", line 120, in feed'}  # one fault, two messages
    errors = [
        around_midnight("before", -10, **jam),
        around_midnight("after", 10, device_id="kiosk-2", severity="fatal", **jam),
        around_midnight("camera", 20, type="CameraError"),
        around_midnight("again", 30, message="paper jam on tray 2", **jam),
    ]
    sent = api.client.post("/v1/errors/batch", json={"errors": errors}, headers=api.app)
    assert sent.json()["inserted"] == 4, sent.text

    def report(**params: str) -> Any:
        return api.client.get("/v1/reports/errors", params=params, headers=api.admin)

    per_day, whole, weekly = report(group_by="day"), report(), report(group_by="week")

    assert per_day.status_code == 200, per_day.text
    days = [(yesterday - timedelta(days=1)).isoformat(), yesterday.isoformat()]
    assert [
        (g["day"], g["type"], g["count"], g["devices"], g["severity"], g["sample_message"])
        for g in per_day.json()["items"]
    ] == [
        (days[0], "PrinterError", 1, 1, "error", "paper jam"),
        (days[1], "PrinterError", 2, 2, "fatal", "paper jam on tray 2"),
        (days[1], "CameraError", 1, 1, "error", "paper jam"),
    ]
    assert [(g["day"], g["type"], g["count"]) for g in whole.json()["items"]] == [
        (None, "PrinterError", 3),
        (None, "CameraError", 1),
    ]
    body = assert_error(weekly, 422, "validation_error")
    assert body["fields"] == [{"field": "group_by", "message": "must be day"}]


def test_performance_percentiles_per_version_show_the_slow_capture(api: Api) -> None:
    metrics = [a_metric(f"old-{i}", 100.0 + i, breakdown={"focus": 10.0 + i}) for i in range(20)]
    metrics += [a_metric(f"new-{i}", 900.0 + i, app_version="1.5.0") for i in range(10)]
    metrics += [
        a_metric("ended", 0, duration_ms=None, ended_at=ts(2.5)),  # 30 s from its end
        a_metric("negative", -5.0),
        a_metric("backwards", 0, duration_ms=None, ended_at=ts(1)),
    ]

    stored = api.client.post("/v1/performance/batch", json={"metrics": metrics}, headers=api.app)
    one = api.client.post(
        "/v1/performance", json=a_metric("single", 50.0, type="print"), headers=api.app
    )
    report = api.client.get(
        "/v1/reports/performance", params={"type": "capture", "from": ts(0)}, headers=api.admin
    )

    assert stored.json()["inserted"] == 31 and one.status_code == 201, (stored.text, one.text)
    assert [e["error"].split(":")[1].strip() for e in stored.json()["errors"]] == [
        "duration_ms",
        "ended_at",
    ]
    old, new = report.json()["items"]
    assert (old["group"], old["count"], old["p50_ms"], old["p95_ms"], old["max_ms"]) == (
        "1.4.2",
        21,
        110.0,
        119.0,
        30000.0,
    )
    assert old["breakdown"]["focus"] == {"p50_ms": 19.0, "p95_ms": 28.0}
    assert (new["group"], new["p50_ms"], new["p99_ms"], new["success_rate"]) == (
        "1.5.0",
        904.0,
        909.0,
        1.0,
    )
    by_device = api.client.get(
        "/v1/reports/performance", params={"group_by": "device_id"}, headers=api.admin
    )
    assert {(r["type"], r["group"]) for r in by_device.json()["items"]} == {
        ("capture", "kiosk-1"),
        ("print", "kiosk-1"),
    }
    bad = api.client.get("/v1/reports/performance", params={"group_by": "store"}, headers=api.admin)
    assert invalid_fields(bad) == ["group_by"]


def test_a_sale_is_recorded_exactly_and_refused_by_name_when_it_is_wrong(api: Api) -> None:
    session = api.start(kind="kiosk", resource_id="kiosk-1", subject_id=None, client_key="k1")
    sid = session["id"]

    sale = api.client.post("/v1/sales", json=a_sale("s1", sid), headers=api.app)
    again = api.client.post("/v1/sales", json=a_sale("s1", sid), headers=api.app)
    other = api.client.post(
        "/v1/sales", json=a_sale("s1", sid, payment_method="cash"), headers=api.app
    )

    assert sale.status_code == 201, sale.text
    assert sale.json()["settlement"] == {
        "state": "pending",
        "scheduled_date": None,
        "processed_at": None,
        "batch_id": None,
    }
    assert sale.json()["amounts"] == {
        "gross": "20000",
        "discount": "2000",
        "tax": "0",
        "net": "18000",
    }
    assert again.status_code == 200
    assert_error(other, 409, "conflict")

    def refused(**fields: Any) -> list[str]:
        body = {**a_sale("bad", sid), **fields}
        return invalid_fields(api.client.post("/v1/sales", json=body, headers=api.app))

    assert refused(amounts={"gross": "1.0000000001", "net": "1"}) == ["amounts.gross"]
    assert refused(amounts={"gross": "-1", "net": "0"}) == ["amounts.gross"]
    assert refused(amounts={"gross": "10", "tax": "1", "net": "11.5"}) == ["amounts.net"]
    assert refused(currency="XYZ") == ["currency"]
    assert refused(session_id="3f2b8c1e-9d4a-4e6b-8f1a-2c3d4e5f6a7b") == ["session_id"]
    assert refused(status="refunded", refund_of="nope") == ["refund_of"]
    assert refused(payment_method="cheque") == ["payment_method"]
    listed = api.client.get("/v1/sales", params={"session_id": sid}, headers=api.admin)
    assert [s["id"] for s in listed.json()["items"]] == ["s1"]


def test_settlement_moves_along_its_state_machine_and_refunds_are_sales_of_their_own(
    api: Api,
) -> None:
    session = api.start(kind="kiosk", resource_id="kiosk-1", subject_id=None, client_key="k1")
    sid = session["id"]
    api.client.post("/v1/sales", json=a_sale("s1", sid), headers=api.app)
    api.client.post(
        "/v1/sales",
        json=a_sale(
            "s2",
            sid,
            currency="USD",
            amounts={"gross": "12.5", "net": "12.5"},
            attributes={"store": "gangnam"},
        ),
        headers=api.app,
    )
    refund = api.client.post(
        "/v1/sales",
        json=a_sale(
            "r1",
            sid,
            status="refunded",
            refund_of="s1",
            occurred_at=ts(30),
            amounts={"gross": "18000", "net": "18000"},
        ),
        headers=api.app,
    )

    def move(sale: str, headers: dict[str, str] | None = None, **body: Any) -> Any:
        return api.client.patch(
            f"/v1/sales/{sale}/settlement", json=body, headers=headers or api.admin
        )

    disputed = move("s1", state="disputed")
    settled = move("s1", state="settled", batch_id="batch-1", scheduled_date="2026-12-03")
    retried = move("s1", state="settled", batch_id="batch-1")
    back = move("s1", state="pending")

    assert refund.status_code == 201, refund.text
    assert disputed.json()["settlement"]["state"] == "disputed"
    assert settled.json()["settlement"] == {
        "state": "settled",
        "scheduled_date": "2026-12-03",
        "processed_at": None,
        "batch_id": "batch-1",
    }
    assert retried.status_code == 200
    assert assert_error(back, 409, "conflict")["current_state"] == "settled"
    assert_error(move("nope", state="settled"), 404, "not_found")
    assert_error(move("s2", api.ingest, state="settled"), 403, "forbidden")
    assert invalid_fields(move("s2", state="lost")) == ["state"]

    by_device = api.client.get(
        "/v1/reports/sales", params={"group_by": "device_id"}, headers=api.admin
    )
    assert by_device.json()["items"] == [
        {
            "group": "kiosk-1",
            "currency": "KRW",
            "count": 1,
            "gross": "20000",
            "discount": "2000",
            "tax": "0",
            "net": "18000",
            "refunded": "18000",
            "by_method": {"card": "18000"},
            "by_state": {"settled": "18000"},
        },
        {
            "group": "kiosk-1",
            "currency": "USD",
            "count": 1,
            "gross": "12.5",
            "discount": "0",
            "tax": "0",
            "net": "12.5",
            "refunded": "0",
            "by_method": {"card": "12.5"},
            "by_state": {"pending": "12.5"},
        },
    ]
    by_store = api.client.get(
        "/v1/reports/sales",
        params={"group_by": "attributes.store", "currency": "USD"},
        headers=api.admin,
    )
    assert [(r["group"], r["net"]) for r in by_store.json()["items"]] == [("gangnam", "12.5")]
    assert invalid_fields(
        api.client.get("/v1/reports/sales", params={"group_by": "store"}, headers=api.admin)
    ) == ["group_by"]
    assert invalid_fields(
        api.client.get("/v1/reports/sales", params={"currency": "EURO"}, headers=api.admin)
    ) == ["currency"]
    backwards = api.client.get(
        "/v1/reports/sales", params={"from": ts(10), "to": ts(0)}, headers=api.admin
    )
    assert invalid_fields(backwards) == ["from"]


def test_telemetry_of_one_tenant_is_invisible_to_another(api: Api) -> None:
    session = api.start(kind="kiosk", resource_id="kiosk-1", subject_id=None, client_key="k1")

    theirs = api.client.post(
        "/v1/sales", json=a_sale("s1", session["id"]), headers=api.other_tenant
    )
    error = api.client.post(
        "/v1/errors", json=an_error("e1", session_id=session["id"]), headers=api.other_tenant
    )

    assert invalid_fields(theirs) == ["session_id"]
    assert invalid_fields(error) == ["session_id"]


def test_what_a_hostile_review_found_is_refused_by_name_not_failed_on(api: Api) -> None:
    """Each of these once answered 500 or stored what it should have refused."""
    session = api.start(kind="kiosk", resource_id="kiosk-1", subject_id=None, client_key="k1")
    sid = session["id"]
    huge = "12345678901234567890123.0000000001"  # quantizing it overflowed the decimal context

    def sale(**fields: Any) -> Any:
        return api.client.post("/v1/sales", json={**a_sale("h", sid), **fields}, headers=api.app)

    assert invalid_fields(sale(amounts={"gross": huge, "net": "1"})) == ["amounts.gross"]
    assert invalid_fields(sale(attributes={"store": {"nested": 1}})) == ["attributes.store"]
    assert invalid_fields(sale(attributes={"store": None})) == ["attributes.store"]
    zero = sale(id="zero", amounts={"gross": "-0", "discount": "-0.00", "net": "-0"})
    assert zero.json()["amounts"]["gross"] == "0", zero.text
    loss = {"sale_lost": True, "estimated_loss": {"amount": huge, "currency": "KRW"}}
    batch = api.client.post(
        "/v1/errors/batch",
        json={"errors": [an_error("ok"), an_error("huge", impact=loss), [[[[[[]]]]]]]},
        headers=api.app,
    )
    assert batch.status_code == 200 and batch.json()["inserted"] == 1, batch.text
    deep = json.dumps(an_error("deep"))[:-1] + ', "context": ' + '{"a": ' * 100_000 + "{}"
    deep += "}" * 100_000 + "}"
    nested = api.client.post("/v1/errors", content=deep, headers=api.app)
    assert_error(nested, 400, "malformed_json")
    metric = api.client.post(
        "/v1/performance", json=a_metric("nl", 5.0, type="capture\n"), headers=api.app
    )
    assert invalid_fields(metric) == ["type"]
    for forged in (
        "[" * 5000 + "]" * 5000,
        '["2026-01-01T00:00:00+00:00","\\ud800"]',
        '["2026-01-01T00:00:00+00:00", 7]',
    ):
        cursor = base64.urlsafe_b64encode(forged.encode()).decode()
        listed = api.client.get("/v1/errors", params={"cursor": cursor}, headers=api.admin)
        assert invalid_fields(listed) == ["cursor"]
    api.client.post("/v1/sales", json=a_sale("s1", sid), headers=api.app)
    upper = api.client.get("/v1/sales", params={"session_id": sid.upper()}, headers=api.admin)
    assert sorted(s["id"] for s in upper.json()["items"]) == ["s1", "zero"]
    failed = api.client.post("/v1/sales", json=a_sale("f", sid, status="failed"), headers=api.app)
    assert failed.status_code == 201
    assert invalid_fields(sale(id="r", status="refunded", refund_of="f")) == ["refund_of"]
    early = api.client.patch(
        "/v1/sales/s1/settlement",
        json={"state": "settled", "scheduled_date": "0001-01-01"},
        headers=api.admin,
    )
    assert invalid_fields(early) == ["scheduled_date"]
