"""Report endpoints: admin only, parameters checked, usage stats exact."""

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.app_client import Api
from tests.http.envelope import assert_error, invalid_fields


def test_reports_need_an_admin_key_and_valid_parameters(api: Api) -> None:
    assert_error(api.client.get("/v1/reports/active", headers=api.app), 403, "forbidden")
    assert invalid_fields(api.client.get("/v1/reports/watch-time", headers=api.admin)) == [
        "resource_id"
    ]
    naive = api.client.get(
        "/v1/reports/resources", params={"from": "2026-11-01T00:00:00"}, headers=api.admin
    )
    assert invalid_fields(naive) == ["from"]


def test_usage_stats_sum_a_subjects_sessions(api: Api) -> None:
    session = api.start(subject_id="kiosk-7")
    api.client.post(
        "/v1/events/batch",
        json={
            "events": [
                {
                    "session_id": session["id"],
                    "sequence_no": 1,
                    "type": "photo",
                    "at": session["started_at"],
                    "meters": {"cost_usd": "0.05"},
                }
            ]
        },
        headers=api.app,
    )
    api.client.post(
        f"/v1/sessions/{session['id']}/exit",
        json={"usage": {"cost_usd": "0.10"}},
        headers=api.app,
    )

    stats = api.client.get("/v1/accounts/kiosk-7/usage-stats", headers=api.admin).json()

    assert stats["total_sessions"] == 1 and stats["total_events"] == 1
    assert stats["meters"] == {"cost_usd": "0.15"} and stats["total_credits_consumed"] == 0


def test_the_resources_report_counts_anonymous_browsers_and_ended_sessions(api: Api) -> None:
    ana = api.start(subject_id="ana")
    api.start(subject_id="ana")
    api.start(subject_id=None, client_key="tab-1")
    gone = api.start(subject_id=None, client_key="tab-1")
    api.start(subject_id=None, client_key="tab-2")
    for session in (ana, gone):
        api.client.post(f"/v1/sessions/{session['id']}/exit", json={}, headers=api.app)

    report = api.client.get("/v1/reports/resources", headers=api.admin)

    assert report.status_code == 200
    (webinar,) = report.json()["items"]
    assert webinar["total_sessions"] == 5
    assert (webinar["unique_subjects"], webinar["unique_visitors"]) == (1, 3)
    assert (webinar["ended_sessions"], webinar["active_now"]) == (2, 3)


def test_an_agencys_webinars_and_a_clients_viewers_are_read_by_declared_dimension(
    api: Api,
) -> None:
    api.client.put("/v1/settings", json={"dimensions": ["agency", "client"]}, headers=api.admin)
    started = datetime.now(UTC) - timedelta(hours=2)
    for viewer, webinar, agency, client in (
        ("ana", "w-1", "north", "acme-bank"),
        ("ben", "w-1", "north", "acme-bank"),
        ("cho", "w-2", "north", "zeta-ins"),
        ("dan", "w-3", "south", "acme-bank"),
    ):
        session = api.start(
            resource_id=webinar,
            subject_id=viewer,
            started_at=started.isoformat(),
            attributes={"agency": agency, "client": client},
        )
        exit = {"at": (started + timedelta(minutes=30)).isoformat()}
        api.client.post(f"/v1/sessions/{session['id']}/exit", json=exit, headers=api.app)

    def report(path: str, **params: str) -> Any:
        return api.client.get(f"/v1/reports/{path}", params=params, headers=api.admin)

    north = report("resources", **{"attributes.agency": "north"}).json()["items"]
    bank = report("resources", **{"attributes.client": "acme-bank"}).json()["items"]
    w1_bank = report("watch-time", resource_id="w-1", **{"attributes.client": "acme-bank"})
    w2_bank = report("watch-time", resource_id="w-2", **{"attributes.client": "acme-bank"})

    assert [(r["resource_id"], r["total_sessions"]) for r in north] == [("w-1", 2), ("w-2", 1)]
    assert [(r["resource_id"], r["total_sessions"]) for r in bank] == [("w-1", 2), ("w-3", 1)]
    assert [v["subject_id"] for v in w1_bank.json()["items"]] == ["ana", "ben"]
    assert w2_bank.json()["items"] == []
    refused = report("resources", **{"attributes.country": "KR"})
    assert invalid_fields(refused) == ["attributes.country"]
    assert invalid_fields(report("watch-time", resource_id="w-1", **{"attributes.x": "1"})) == [
        "attributes.x"
    ]


def agency_webinars(api: Api) -> None:
    """Viewers of two agencies' webinars, and one who came without an agency; each visit 30
    minutes, ana's two tabs overlapping by 15."""
    api.client.put("/v1/settings", json={"dimensions": ["agency", "client"]}, headers=api.admin)
    started = datetime.now(UTC) - timedelta(hours=2)
    for viewer, webinar, agency, minute in (
        ("ana", "w-1", "north", 0),
        ("ana", "w-1", "north", 15),
        ("ana", "w-2", "north", 0),
        ("ben", "w-1", "south", 0),
        ("cho", "w-1", None, 0),
    ):
        start = started + timedelta(minutes=minute)
        session = api.start(
            resource_id=webinar,
            subject_id=viewer,
            started_at=start.isoformat(),
            attributes={} if agency is None else {"agency": agency},
        )
        exit = {"at": (start + timedelta(minutes=30)).isoformat()}
        api.client.post(f"/v1/sessions/{session['id']}/exit", json=exit, headers=api.app)


def test_the_resources_report_groups_by_a_declared_dimension(api: Api) -> None:
    agency_webinars(api)

    def report(**params: str) -> Any:
        return api.client.get("/v1/reports/resources", params=params, headers=api.admin)

    grouped = report(group_by="attributes.agency")

    assert grouped.status_code == 200, grouped.text
    north, south, without = grouped.json()["items"]
    assert (north["group"], north["resource_id"]) == ("north", None)
    assert (north["total_sessions"], north["unique_subjects"], north["unique_visitors"]) == (
        3,
        1,
        1,
    )
    assert (north["peak_concurrency"], north["avg_duration_seconds"]) == (3, 1800.0)
    assert [(g["group"], g["total_sessions"]) for g in (south, without)] == [
        ("south", 1),
        (None, 1),
    ]
    refused = report(group_by="attributes.country")
    assert invalid_fields(refused) == ["group_by"]
    assert "agency, client" in refused.json()["fields"][0]["message"]
    assert invalid_fields(report(group_by="agency")) == ["group_by"]
    w1, w2 = report().json()["items"]
    assert w1 == {
        "resource_id": "w-1",
        "group": None,
        "total_sessions": 4,
        "unique_subjects": 3,
        "total_duration_seconds": 4 * 1800.0,
        "avg_duration_seconds": 1800.0,
        "active_now": 0,
        "peak_concurrency": 4,
        "unique_visitors": 3,
        "ended_sessions": 4,
    }
    assert (w2["resource_id"], w2["group"], w2["total_sessions"]) == ("w-2", None, 1)


def test_watch_time_groups_by_a_declared_dimension(api: Api) -> None:
    agency_webinars(api)

    def report(**params: str) -> Any:
        return api.client.get(
            "/v1/reports/watch-time", params={"resource_id": "w-1", **params}, headers=api.admin
        )

    grouped = report(group_by="attributes.agency")

    assert grouped.status_code == 200, grouped.text
    assert grouped.json()["items"] == [
        {
            "subject_id": None,
            "group": "north",
            "visit_count": 2,
            "total_seconds": 3600.0,
            "avg_seconds": 1800.0,
            "unique_seconds": 2700.0,  # ana's two tabs overlap by 15 minutes
        },
        {
            "subject_id": None,
            "group": "south",
            "visit_count": 1,
            "total_seconds": 1800.0,
            "avg_seconds": 1800.0,
            "unique_seconds": 1800.0,
        },
        {
            "subject_id": None,
            "group": None,
            "visit_count": 1,
            "total_seconds": 1800.0,
            "avg_seconds": 1800.0,
            "unique_seconds": 1800.0,
        },
    ]
    refused = report(group_by="attributes.country")
    assert invalid_fields(refused) == ["group_by"]
    assert "agency, client" in refused.json()["fields"][0]["message"]
    ungrouped = report().json()["items"]
    assert ungrouped[0] == {
        "subject_id": "ana",
        "group": None,
        "visit_count": 2,
        "total_seconds": 3600.0,
        "avg_seconds": 1800.0,
        "unique_seconds": 2700.0,
    }
    assert [(v["subject_id"], v["group"]) for v in ungrouped] == [
        ("ana", None),
        ("ben", None),
        ("cho", None),
    ]
