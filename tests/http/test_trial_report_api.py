"""The trial report through the API: figures after real refusals, admin only, the window."""

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.app_client import Api
from tests.http.envelope import assert_error, invalid_fields

FREE = {
    "default": True,
    "limits": {"sessions_per_resource": 1, "session_kinds": ["practice"], "resources_per_month": 1},
}


def refused(api: Api, code: str, path: str, body: dict[str, Any]) -> None:
    assert_error(api.client.post(path, json=body, headers=api.app), 402, code)


def start_practice(api: Api, subject: str) -> None:
    body = {"kind": "practice", "resource_id": "pdf-1", "subject_id": subject}
    response = api.client.post("/v1/sessions", json=body, headers=api.app)
    if response.status_code != 201:
        assert_error(response, 402, "trial_exhausted")


def report(api: Api, **window: str) -> Any:
    params = {name.rstrip("_"): value for name, value in window.items()}
    return api.client.get("/v1/reports/trials", params=params, headers=api.admin)


def test_the_report_counts_trials_refusals_and_conversions(api: Api) -> None:
    api.client.put("/v1/plans/free", json=FREE, headers=api.admin)
    api.client.put("/v1/plans/pass", json={"unlimited": True}, headers=api.admin)
    api.client.put("/v1/rates/counseling", json={"credits_per_minute": 2}, headers=api.admin)
    api.client.put(
        "/v1/settings", json={"overdraft": "hard", "min_start_credits": 20}, headers=api.admin
    )
    for subject, tries in (("mina", 3), ("jun", 2)):
        for _ in range(tries):  # the first starts, the others are refused
            start_practice(api, subject)
    api.start(kind="webinar", subject_id="mina")  # a kind no plan limits
    ends = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    paid = api.client.put(
        "/v1/accounts/mina/subscription",
        json={"plan_id": "pass", "ends_at": ends},
        headers=api.admin,
    )
    assert paid.status_code == 200
    start_practice(api, "mina")  # paid: no trial session, not refused
    resources = "/v1/accounts/jun/resources"
    added = api.client.post(
        resources, json={"resource_id": "pdf-1", "kind": "pdf"}, headers=api.app
    )
    assert added.status_code == 201
    refused(api, "quota_exceeded", resources, {"resource_id": "pdf-2", "kind": "pdf"})
    refused(
        api,
        "insufficient_credits",
        "/v1/sessions",
        {"kind": "counseling", "resource_id": "room", "subject_id": "dr-cho"},
    )

    found = report(api)

    assert found.status_code == 200, found.text
    body = found.json()
    assert datetime.fromisoformat(body.pop("to")) - datetime.fromisoformat(
        body.pop("from")
    ) == timedelta(days=30)
    assert body == {
        "trial_subjects": 2,
        "sessions_used": 2,
        "avg_sessions_per_subject": 1.0,
        "refused_starts": {"trial_exhausted": 3, "quota_exceeded": 1, "insufficient_credits": 1},
        "subjects_exhausted": 2,
        "conversions": 1,
        "conversion_rate": 0.5,
    }


def test_a_window_without_trials_has_no_averages(api: Api) -> None:
    api.client.put("/v1/plans/free", json=FREE, headers=api.admin)
    start_practice(api, "mina")
    future = datetime.now(UTC) + timedelta(days=1)

    found = report(api, from_=future.isoformat(), to=(future + timedelta(days=7)).isoformat())

    assert found.status_code == 200, found.text
    body = found.json()
    assert (body["trial_subjects"], body["sessions_used"]) == (0, 0)
    assert body["avg_sessions_per_subject"] is None and body["conversion_rate"] is None
    assert datetime.fromisoformat(body["from"]) == future.replace(
        microsecond=future.microsecond // 1000 * 1000
    )


def test_only_an_admin_reads_the_report(api: Api) -> None:
    assert_error(api.client.get("/v1/reports/trials", headers=api.app), 403, "forbidden")
    assert_error(api.client.get("/v1/reports/trials", headers=api.ingest), 403, "forbidden")
    assert_error(api.client.get("/v1/reports/trials"), 401, "unauthorized")


def test_a_bad_window_names_the_field(api: Api) -> None:
    now = datetime.now(UTC)
    later = (now + timedelta(hours=1)).isoformat()

    assert invalid_fields(report(api, from_=later, to=now.isoformat())) == ["from"]
    assert invalid_fields(report(api, from_=later, to=later)) == ["from"]
    assert invalid_fields(report(api, from_="2026-12-01T00:00:00")) == ["from"]
    assert invalid_fields(report(api, to="yesterday")) == ["to"]
    # Instants past the calendar's ends once in UTC.
    assert invalid_fields(report(api, from_="0001-01-01T00:00:00+14:00")) == ["from"]
    assert invalid_fields(report(api, to="9999-12-31T23:00:00-12:00")) == ["to"]
