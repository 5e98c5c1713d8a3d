"""Funnels through the API: defined, read back and removed by admins; bad definitions named;
the report's figures."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.app_client import Api
from tests.http.envelope import assert_error, invalid_fields

MINUTE_0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
PHOTO = {
    "kind": "kiosk",
    "stages": [
        {"name": "frame", "match": {"type": "screen_enter", "label": "frame"}},
        {"name": "capture", "match": {"type": "capture"}},
        {"name": "payment", "match": {"type": "payment", "category": "card"}},
    ],
}

Screen = tuple[str, dict[str, str]]  # an event's type, and its label or category


def minute(n: float) -> str:
    return (MINUTE_0 + timedelta(minutes=n)).isoformat()


def put(api: Api, name: str, body: Any, headers: dict[str, str] | None = None) -> Any:
    return api.client.put(f"/v1/funnels/{name}", json=body, headers=headers or api.admin)


def visit(
    api: Api, start: int, events: list[Screen], status: str | None, store: str | None = None
) -> None:
    """A kiosk session from minute `start` (at a store, if named), an event a minute, then its
    exit (if any)."""
    attributes = {} if store is None else {"store_id": store}
    session = api.start(kind="kiosk", resource_id="kiosk-1", subject_id=None, client_key="k",
                        started_at=minute(start), attributes=attributes)  # fmt: skip
    batch = [
        {
            "session_id": session["id"],
            "sequence_no": n,
            "type": type,
            "at": minute(start + n),
            **more,
        }
        for n, (type, more) in enumerate(events, start=1)
    ]
    sent = api.client.post("/v1/events/batch", json={"events": batch}, headers=api.app)
    assert sent.status_code == 200 and sent.json()["failed"] == 0, sent.text
    if status is not None:
        left = api.client.post(
            f"/v1/sessions/{session['id']}/exit",
            json={"at": minute(start + len(events) + 1), "status": status},
            headers=api.app,
        )
        assert left.status_code == 200, left.text


def test_an_admin_defines_reads_back_and_removes_funnels(api: Api) -> None:
    assert put(api, "photo", PHOTO).json() == {"name": "photo", **PHOTO}
    put(api, "quiz", {"kind": "practice", "stages": PHOTO["stages"][:2]})

    listed = api.client.get("/v1/funnels", headers=api.admin).json()["items"]
    one = api.client.get("/v1/funnels/photo", headers=api.admin).json()
    removed = api.client.delete("/v1/funnels/quiz", headers=api.admin)

    assert [f["name"] for f in listed] == ["photo", "quiz"]
    assert one == {"name": "photo", **PHOTO}
    assert removed.status_code == 200 and removed.json()["name"] == "quiz"
    assert_error(api.client.get("/v1/funnels/quiz", headers=api.admin), 404, "not_found")
    assert_error(api.client.delete("/v1/funnels/quiz", headers=api.admin), 404, "not_found")
    assert_error(api.client.get("/v1/reports/funnel/quiz", headers=api.admin), 404, "not_found")
    assert api.client.get("/v1/funnels", headers=api.other_tenant).status_code == 403


@pytest.mark.parametrize("key", ["app", "ingest"])
def test_only_an_admin_key_opens_funnels(api: Api, key: str) -> None:
    put(api, "photo", PHOTO)
    headers = getattr(api, key)

    answers = [
        put(api, "photo", PHOTO, headers),
        api.client.get("/v1/funnels", headers=headers),
        api.client.get("/v1/funnels/photo", headers=headers),
        api.client.delete("/v1/funnels/photo", headers=headers),
        api.client.get("/v1/reports/funnel/photo", headers=headers),
    ]

    assert [a.status_code for a in answers] == [403] * 5


def stages(*matches: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"name": f"s{i}", "match": m} for i, m in enumerate(matches)]


@pytest.mark.parametrize(
    ("name", "body", "field"),
    [
        ("photo", {**PHOTO, "stage": []}, "stage"),
        ("photo", {**PHOTO, "stages": stages({"type": "a", "lable": "x"}, {"type": "b"})},
         "stages[0].match.lable"),
        ("photo", {**PHOTO, "stages": stages({"type": "a"})}, "stages"),
        ("photo", {**PHOTO, "stages": stages(*[{"type": "a"}] * 21)}, "stages"),
        ("photo", {**PHOTO, "stages": stages({"type": "a"}, {})}, "stages[1].match.type"),
        ("photo", {**PHOTO, "stages": stages({"type": "a"}, {"type": ""})}, "stages[1].match.type"),
        ("photo", {**PHOTO, "stages": [PHOTO["stages"][0], PHOTO["stages"][0]]}, "stages[1].name"),
        ("photo", {"stages": PHOTO["stages"]}, "kind"),
        ("photo", {**PHOTO, "kind": "Kiosk!"}, "kind"),
        ("Photo Booth", PHOTO, "name"),
    ],
)  # fmt: skip
def test_a_bad_funnel_is_a_422_naming_the_field(
    api: Api, name: str, body: dict[str, Any], field: str
) -> None:
    refused = put(api, name, body)

    assert invalid_fields(refused) == [field]
    assert api.client.get("/v1/funnels", headers=api.admin).json()["items"] == []


def test_the_report_says_how_far_the_kiosks_customers_got(api: Api) -> None:
    put(api, "photo", PHOTO)
    frame = ("screen_enter", {"label": "frame"})
    capture: Screen = ("capture", {})
    card = ("payment", {"category": "card"})
    visit(api, 0, [frame, capture, card], "completed")
    visit(api, 1, [frame, capture, ("payment", {"category": "cash"})], "abandoned")
    visit(api, 2, [frame, ("tap", {}), ("tap", {}), capture], "abandoned")
    visit(api, 3, [capture, frame], "failed")
    visit(api, 4, [("tap", {})], "cancelled")

    report = api.client.get("/v1/reports/funnel/photo", headers=api.admin)

    assert report.status_code == 200, report.text
    assert report.json() == {
        "sessions": 5,
        "stages": [
            {"name": "frame", "reached": 4, "conversion_from_previous": 0.8,
             "conversion_from_start": 0.8, "dropped_here": 1, "median_seconds_in_stage": 60.0},
            {"name": "capture", "reached": 3, "conversion_from_previous": 0.75,
             "conversion_from_start": 0.6, "dropped_here": 2, "median_seconds_in_stage": 60.0},
            {"name": "payment", "reached": 1, "conversion_from_previous": 0.3333,
             "conversion_from_start": 0.2, "dropped_here": 0, "median_seconds_in_stage": None},
        ],
        "exit_statuses": {"active": 0, "completed": 1, "abandoned": 2, "timed_out": 0,
                          "cancelled": 1, "failed": 1},
        "groups": [],
    }  # fmt: skip


def test_the_report_splits_by_store_and_keeps_one_store_when_asked(api: Api) -> None:
    put(api, "photo", PHOTO)
    api.client.put("/v1/settings", json={"dimensions": ["store_id"]}, headers=api.admin)
    frame = ("screen_enter", {"label": "frame"})
    capture: Screen = ("capture", {})
    visit(api, 0, [frame, capture], "completed", store="S1")
    visit(api, 1, [frame], "abandoned", store="S1")
    visit(api, 2, [frame, capture], "completed", store="S2")

    def report(**params: str) -> Any:
        return api.client.get("/v1/reports/funnel/photo", params=params, headers=api.admin)

    grouped = report(group_by="attributes.store_id").json()
    s2 = report(**{"attributes.store_id": "S2"}).json()

    assert grouped["sessions"] == 3
    assert [
        (g["group"], g["sessions"], [s["reached"] for s in g["stages"]]) for g in grouped["groups"]
    ] == [
        ("S1", 2, [2, 1, 0]),
        ("S2", 1, [1, 1, 0]),
    ]
    assert (s2["sessions"], s2["groups"]) == (1, [])
    assert invalid_fields(report(group_by="attributes.country")) == ["group_by"]
    assert invalid_fields(report(**{"attributes.country": "KR"})) == ["attributes.country"]


def test_the_reports_window_is_by_session_start(api: Api) -> None:
    put(api, "photo", PHOTO)
    visit(api, 0, [("screen_enter", {"label": "frame"})], "abandoned")
    later = {"from": minute(1), "to": minute(60)}

    outside = api.client.get("/v1/reports/funnel/photo", params=later, headers=api.admin).json()
    backwards = api.client.get(
        "/v1/reports/funnel/photo", params={"from": minute(5), "to": minute(1)}, headers=api.admin
    )

    assert outside["sessions"] == 0 and outside["stages"][0]["conversion_from_start"] is None
    assert invalid_fields(backwards) == ["from"]
