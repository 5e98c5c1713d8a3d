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
