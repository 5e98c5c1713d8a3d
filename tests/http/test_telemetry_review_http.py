"""A hostile review of kiosk telemetry through the real app (a helper's, 2026-12-05): every
documented limit at its edge is taken and one past it is refused by name (never a 500), a batch
past the body cap is refused whole and says so, and one tenant can neither move, refund nor list
another's sales."""

import math
from typing import Any

from tests.app_client import Api
from tests.http.envelope import assert_error, invalid_fields
from tests.http.test_telemetry_api import a_metric, a_sale, an_error, ts

WEEK_MS = 7 * 24 * 3600 * 1000
TOP = "999999999999999.999999999"  # the largest amount: below 10^15, 9 places


def _edges(sid: str) -> list[tuple[str, str, dict[str, Any], dict[str, Any], str]]:
    """(path, name, the body at the limit, the body one past it, the field it names)."""
    crumb = {"at": ts(0), "type": "tap"}
    item = {"sku": "print-4x6", "quantity": 1, "unit_price": "1"}
    e, m, s = "/v1/errors", "/v1/performance", "/v1/sales"
    return [
        (e, "id", an_error("i" * 200), an_error("i" * 201), "id"),
        (e, "device_id", an_error("d", device_id="k" * 200), an_error("d", device_id="k" * 201), "device_id"),
        (e, "message", an_error("m", message="a" * 4096), an_error("m", message="a" * 4097), "message"),
        # 4 KB are bytes: 1365 three-byte characters fit, 1366 do not
        (e, "message utf-8", an_error("u", message="잼" * 1365), an_error("u", message="잼" * 1366), "message"),
        (e, "stack_trace", an_error("t", stack_trace="f" * 65536), an_error("t", stack_trace="f" * 65537), "stack_trace"),
        (e, "breadcrumbs", an_error("b", breadcrumbs=[crumb] * 50), an_error("b", breadcrumbs=[crumb] * 51), "breadcrumbs"),
        (e, "loss", an_error("l", impact={"estimated_loss": {"amount": TOP, "currency": "KRW"}}),
         an_error("l", impact={"estimated_loss": {"amount": "1000000000000000", "currency": "KRW"}}),
         "impact.estimated_loss.amount"),
        (m, "id", a_metric("i" * 200, 1.0), a_metric("i" * 201, 1.0), "id"),
        (m, "device_id", a_metric("d", 1.0, device_id="k" * 200), a_metric("d", 1.0, device_id="k" * 201), "device_id"),
        (m, "longest", a_metric("w", WEEK_MS), a_metric("w", WEEK_MS + 0.001), "duration_ms"),
        (m, "shortest", a_metric("z", 0), a_metric("z", -0.001), "duration_ms"),
        (m, "steps", a_metric("s", 1.0, breakdown={f"s{i}": 1 for i in range(50)}),
         a_metric("s", 1.0, breakdown={f"s{i}": 1 for i in range(51)}), "breakdown"),
        (m, "step", a_metric("p", 1.0, breakdown={"print": WEEK_MS}),
         a_metric("p", 1.0, breakdown={"print": WEEK_MS + 1}), "breakdown.print"),
        (s, "id", a_sale("i" * 200, sid), a_sale("i" * 201, sid), "id"),
        (s, "device_id", a_sale("d", sid, device_id="k" * 200), a_sale("d", sid, device_id="k" * 201), "device_id"),
        (s, "amount", a_sale("a", sid, amounts={"gross": TOP, "tax": TOP, "net": TOP}),
         a_sale("a", sid, amounts={"gross": "1000000000000000", "net": "1"}), "amounts.gross"),
        (s, "places", a_sale("p", sid, amounts={"gross": "0.000000001", "net": "0.000000001"}),
         a_sale("p", sid, amounts={"gross": "0.0000000001", "net": "0"}), "amounts.gross"),
        (s, "items", a_sale("n", sid, items=[item] * 100), a_sale("n", sid, items=[item] * 101), "items"),
        (s, "unit_price", a_sale("u", sid, items=[{**item, "unit_price": TOP}]),
         a_sale("u", sid, items=[{**item, "unit_price": "1E+15"}]), "items[0].unit_price"),
        (s, "attributes", a_sale("t", sid, attributes={f"k{i}": i for i in range(50)}),
         a_sale("t", sid, attributes={f"k{i}": i for i in range(51)}), "attributes"),
    ]  # fmt: skip


def test_each_telemetry_limit_at_its_edge_is_taken_and_one_past_it_is_refused_by_name(
    api: Api,
) -> None:
    session = api.start(kind="kiosk", resource_id="kiosk-1", subject_id=None, client_key="k1")

    for path, name, at_limit, past_it, field in _edges(session["id"]):
        past = api.client.post(path, json=past_it, headers=api.app)
        taken = api.client.post(path, json=at_limit, headers=api.app)

        assert invalid_fields(past) == [field], (path, name)
        assert taken.status_code == 201, (path, name, taken.text)
        again = api.client.post(path, json=at_limit, headers=api.app)
        assert again.status_code == 200 and again.json() == taken.json(), (path, name)

    def batch(path: str, key: str, items: list[dict[str, Any]]) -> Any:
        return api.client.post(f"{path}/batch", json={key: items}, headers=api.app)

    full = batch("/v1/performance", "metrics", [a_metric(f"b{i}", 1.0) for i in range(100)])
    assert full.status_code == 200 and full.json()["inserted"] == 100, full.text
    over = batch("/v1/performance", "metrics", [a_metric(f"c{i}", 1.0) for i in range(101)])
    assert_error(over, 413, "payload_too_large")
    full = batch("/v1/errors", "errors", [an_error(f"b{i}") for i in range(100)])
    assert full.status_code == 200 and full.json()["inserted"] == 100, full.text


def test_a_batch_of_errors_past_the_body_cap_is_refused_whole_and_taken_in_parts(
    api: Api,
) -> None:
    """100 errors within every item limit (64 KB stack traces) can pass the 1 MiB that any body
    may be (README, limits): the review's 20 of 61 KB are refused whole, and stored nowhere;
    sent in two batches of 10, they are taken."""
    trace = "\n".join(
        f'File "/opt/kiosk/app/module_{i}.py", line {i}, in step' for i in range(1120)
    )
    assert 60_000 < len(trace.encode()) <= 64 * 1024  # each within the 64 KB of a stack trace
    errors = [an_error(f"crash-{i}", stack_trace=trace, severity="fatal") for i in range(20)]

    whole = api.client.post("/v1/errors/batch", json={"errors": errors}, headers=api.app)
    print(whole.text)
    parts = [
        api.client.post("/v1/errors/batch", json={"errors": errors[n : n + 10]}, headers=api.app)
        for n in (0, 10)
    ]

    assert_error(whole, 413, "payload_too_large")
    assert [(p.status_code, p.json()["inserted"]) for p in parts] == [(200, 10), (200, 10)]


def test_a_duration_of_minus_zero_is_a_duration_of_zero(api: Api) -> None:
    """Found by the review: -0.0 was stored, answered and reported as -0.0 (0.0 on PostgreSQL)."""
    recorded = api.client.post(
        "/v1/performance",
        json=a_metric("m", -0.0, breakdown={"focus": -0.0}),
        headers=api.app,
    )
    report = api.client.get("/v1/reports/performance", headers=api.admin)

    assert recorded.status_code == 201, recorded.text
    (row,) = report.json()["items"]
    for ms in (
        recorded.json()["duration_ms"],
        recorded.json()["breakdown"]["focus"],
        row["p50_ms"],
    ):
        assert ms == 0 and math.copysign(1.0, ms) == 1.0


def test_another_tenant_can_neither_move_nor_refund_nor_list_my_sales(api: Api) -> None:
    mine = api.start(kind="kiosk", resource_id="kiosk-1", subject_id=None, client_key="k1")
    recorded = api.client.post("/v1/sales", json=a_sale("s1", mine["id"]), headers=api.app)
    assert recorded.status_code == 201, recorded.text
    theirs = api.client.post(
        "/v1/sessions",
        json={"kind": "kiosk", "resource_id": "kiosk-1", "client_key": "k2"},
        headers=api.other_tenant,
    ).json()

    moved = api.client.patch(
        "/v1/sales/s1/settlement", json={"state": "disputed"}, headers=api.other_tenant
    )
    refund = api.client.post(
        "/v1/sales",
        json=a_sale("r1", theirs["id"], status="refunded", refund_of="s1", occurred_at=ts(30)),
        headers=api.other_tenant,
    )
    their_own = api.client.post(
        "/v1/sales", json=a_sale("s1", theirs["id"]), headers=api.other_tenant
    )
    listed = api.client.get(
        "/v1/sales", params={"session_id": mine["id"]}, headers=api.other_tenant
    )

    assert_error(moved, 404, "not_found")
    assert invalid_fields(refund) == ["refund_of"]
    assert their_own.status_code == 201  # the same id in another tenant is another sale
    assert listed.json()["items"] == []
    stored = api.client.get("/v1/sales", headers=api.app).json()["items"]
    assert [(s["id"], s["settlement"]["state"]) for s in stored] == [("s1", "pending")]
    report = api.client.get("/v1/reports/sales", headers=api.admin).json()["items"]
    assert [(r["count"], r["refunded"]) for r in report] == [(1, "0")]
