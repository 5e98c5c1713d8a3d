"""Steps of features/trials.feature."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from dependency_injector import providers
from pytest_bdd import given, parsers, scenarios, then, when

from tests.app_client import Api
from tests.fakes import FakeClock

scenarios("trials.feature")


@pytest.fixture
def started() -> list[Any]:
    """The answers to the starts of the scenario, in order."""
    return []


@given(
    parsers.parse(
        "the exam-prep app's free plan allows {pdfs:d} PDF a month and {sessions:d} practice "
        "sessions per PDF"
    )
)
def free_plan(api: Api, pdfs: int, sessions: int) -> None:
    body = {
        "default": True,
        "limits": {
            "sessions_per_resource": sessions,
            "session_kinds": ["practice", "mock_exam"],
            "resources_per_month": pdfs,
        },
    }
    assert api.client.put("/v1/plans/free", json=body, headers=api.admin).status_code == 200


@given("the certification pass practises without limit")
def certification_pass(api: Api) -> None:
    response = api.client.put(
        "/v1/plans/certification", json={"unlimited": True}, headers=api.admin
    )
    assert response.status_code == 200


@given(parsers.parse('the upgrade page is "{url}"'))
def upgrade_page(api: Api, url: str) -> None:
    assert (
        api.client.put("/v1/settings", json={"upgrade_url": url}, headers=api.admin).status_code
        == 200
    )


def upload(api: Api, name: str, pdf: str) -> Any:
    return api.client.post(
        f"/v1/accounts/{name}/resources",
        json={"resource_id": pdf, "kind": "pdf"},
        headers=api.admin,
    )


def start(api: Api, name: str, kind: str, resource: str) -> Any:
    return api.client.post(
        "/v1/sessions",
        json={"kind": kind, "resource_id": resource, "subject_id": name},
        headers=api.app,
    )


@pytest.fixture
def ended() -> dict[str, list[str]]:
    """The ids of the sessions the story started and ended, by kind."""
    return {}


def start_and_end(
    api: Api, clock: FakeClock, ended: dict[str, list[str]], name: str, kind: str, resource: str
) -> None:
    """A session of ten minutes."""
    answer = start(api, name, kind, resource)
    assert answer.status_code == 201, answer.text
    session_id = answer.json()["id"]
    clock.advance(600)
    ended_answer = api.client.post(f"/v1/sessions/{session_id}/exit", json={}, headers=api.app)
    assert ended_answer.status_code == 200, ended_answer.text
    ended.setdefault(kind, []).append(session_id)


@given(parsers.parse('free user "{name}" practised "{pdf}" twice'))
def practised_twice(
    api: Api, clock: FakeClock, ended: dict[str, list[str]], name: str, pdf: str
) -> None:
    for _ in range(2):
        start_and_end(api, clock, ended, name, "practice", pdf)


@given(parsers.parse('"{name}" watched webinar "{webinar}"'))
def watched_webinar(
    api: Api, clock: FakeClock, ended: dict[str, list[str]], name: str, webinar: str
) -> None:
    start_and_end(api, clock, ended, name, "webinar", webinar)


@given(parsers.parse('free user "{name}" uploaded PDF "{pdf}"'))
def uploaded(api: Api, name: str, pdf: str) -> None:
    assert upload(api, name, pdf).status_code == 201


BOUGHT_PASS = parsers.parse(
    'user "{name}" bought the certification pass until an exam {days:d} days from now'
)


@given(BOUGHT_PASS)
@when(BOUGHT_PASS)
def bought_pass(api: Api, name: str, days: int) -> None:
    exam = datetime.now(UTC) + timedelta(days=days)
    response = api.client.put(
        f"/v1/accounts/{name}/subscription",
        json={"plan_id": "certification", "ends_at": exam.isoformat()},
        headers=api.admin,
    )
    assert response.status_code == 200, response.text


@when(parsers.parse('"{name}" starts a practice session on "{pdf}"'))
def starts_practice(api: Api, started: list[Any], name: str, pdf: str) -> None:
    started.append(start(api, name, "practice", pdf))


@when(parsers.parse('"{name}" starts a mock exam on "{pdf}"'))
def starts_mock_exam(api: Api, started: list[Any], name: str, pdf: str) -> None:
    started.append(start(api, name, "mock_exam", pdf))


@when(parsers.parse('"{name}" starts {count:d} practice sessions on "{pdf}"'))
def starts_many(api: Api, started: list[Any], name: str, count: int, pdf: str) -> None:
    started.extend(start(api, name, "practice", pdf) for _ in range(count))


@when(parsers.parse('"{name}" watches webinar "{webinar}" {count:d} times'))
def watches(api: Api, started: list[Any], name: str, webinar: str, count: int) -> None:
    started.extend(start(api, name, "webinar", webinar) for _ in range(count))


@when(parsers.parse('"{name}" uploads PDF "{pdf}"'), target_fixture="upload_answer")
def uploads(api: Api, name: str, pdf: str) -> Any:
    return upload(api, name, pdf)


@when("the exam date has passed")
def exam_passed(api: Api) -> None:
    later = FakeClock(datetime.now(UTC) + timedelta(days=31))
    api.container.outside.clock.override(providers.Object(later))


@then("her webinar is gone and her practice sessions are kept")
def webinar_gone(api: Api, ended: dict[str, list[str]]) -> None:
    def found(session_id: str) -> int:
        return api.client.get(f"/v1/sessions/{session_id}", headers=api.app).status_code

    assert [found(i) for i in ended["webinar"]] == [404]
    assert [found(i) for i in ended["practice"]] == [200, 200]


@then(parsers.parse('the trial of "{name}" on "{pdf}" has {remaining:d} sessions remaining'))
def remaining(api: Api, name: str, pdf: str, remaining: int) -> None:
    status = api.client.get(
        f"/v1/accounts/{name}/resources/{pdf}/trial-status", headers=api.admin
    ).json()
    assert status["sessions_remaining"] == remaining
    assert status["is_free_trial"] and status["requires_upgrade"] == (remaining == 0)


@then("the start is refused because the free trial is used up, pointing to the upgrade page")
def trial_refused(started: list[Any]) -> None:
    refused = started[-1]
    assert refused.status_code == 402
    body = refused.json()
    assert body["error"] == "trial_exhausted"
    assert body["upgrade_url"] == "https://exam.example/upgrade"  # set moments before
    assert body["trial_status"]["sessions_used"] == 2
    assert body["trial_status"]["can_start_session"] is False


@then(parsers.parse("the upload is refused because this month's quota of {pdfs:d} PDF is used"))
def upload_refused(upload_answer: Any, pdfs: int) -> None:
    assert upload_answer.status_code == 402
    body = upload_answer.json()
    assert body["error"] == "quota_exceeded"
    assert body["limits"]["resources_per_month"] == pdfs


@then(parsers.parse("all {count:d} sessions started"))
def all_started(started: list[Any], count: int) -> None:
    assert [r.status_code for r in started] == [201] * count


@then(parsers.parse('"{name}" is on the "{plan}" plan again'))
def on_plan(api: Api, name: str, plan: str) -> None:
    limits = api.client.get(f"/v1/accounts/{name}/limits", headers=api.admin).json()
    assert limits["plan_id"] == plan and limits["subscription_ends_at"] is None


@when("an admin reads back the plans", target_fixture="plans")
def read_back_plans(api: Api) -> list[dict[str, Any]]:
    response = api.client.get("/v1/plans", headers=api.admin)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


@then("the plans are:")
def plans_are(plans: list[dict[str, Any]], datatable: list[list[str]]) -> None:
    def cell(value: Any) -> str:
        if isinstance(value, bool):
            return "yes" if value else "no"
        return "" if value is None else str(value)

    _, *expected = datatable
    assert [
        [
            p["plan_id"],
            cell(p["default"]),
            cell(p["unlimited"]),
            cell(p["limits"]["sessions_per_resource"]),
            cell(p["limits"]["resources_per_month"]),
        ]
        for p in plans
    ] == expected


@then(
    parsers.parse(
        'the subscription history of "{name}" lists the passes until the exams in {later:d} '
        "and {earlier:d} days, newest first"
    )
)
def subscription_history(api: Api, name: str, later: int, earlier: int) -> None:
    response = api.client.get(f"/v1/accounts/{name}/subscriptions", headers=api.admin)
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    now = datetime.now(UTC)
    days = [round((datetime.fromisoformat(i["ends_at"]) - now) / timedelta(days=1)) for i in items]
    assert [i["plan_id"] for i in items] == ["certification", "certification"]
    assert days == [later, earlier]
    assert datetime.fromisoformat(items[0]["set_at"]) >= datetime.fromisoformat(items[1]["set_at"])


@when("an admin reads the trial report of the last 30 days", target_fixture="trial_report")
def read_trial_report(api: Api) -> dict[str, Any]:
    response = api.client.get("/v1/reports/trials", headers=api.admin)
    assert response.status_code == 200, response.text
    return dict(response.json())


TRIAL_FIGURES = {
    "free users who practised": "trial_subjects",
    "free practice sessions used": "sessions_used",
    "average free sessions per user": "avg_sessions_per_subject",
    "users who used up their free trial": "subjects_exhausted",
    "free users who then bought the pass": "conversions",
    "conversion rate": "conversion_rate",
}
REFUSALS = {
    "the free trial was used up": "trial_exhausted",
    "the month's PDF quota was used": "quota_exceeded",
    "not enough credits": "insufficient_credits",
}


@then("the trial report says:")
def trial_report_says(trial_report: dict[str, Any], datatable: list[list[str]]) -> None:
    _, *rows = datatable
    assert [[label, str(trial_report[TRIAL_FIGURES[label]])] for label, _ in rows] == rows


@then("the refused starts were:")
def refused_starts_were(trial_report: dict[str, Any], datatable: list[list[str]]) -> None:
    _, *rows = datatable
    refused = trial_report["refused_starts"]
    assert [[reason, str(refused[REFUSALS[reason]])] for reason, _ in rows] == rows
