"""Steps of features/reports.feature (the Background step is shared, in conftest)."""

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pytest_bdd import given, parsers, scenarios, then, when

from application.rollups.roll_up_usage import RollUpUsageCommand
from tests.app_client import Api

scenarios("reports.feature")

# Every scenario's minute 0, far enough back that all its visits have ended by now.
MINUTE_0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)


def minute(n: int) -> str:
    return (MINUTE_0 + timedelta(minutes=n)).isoformat()


def visit(api: Api, webinar: str, start: int, end: int | None, **visitor: Any) -> dict[str, Any]:
    """A visit from minute `start` to `end` (None: still there) by `visitor` (subject_id,
    client_key, attributes)."""
    session = api.start(resource_id=webinar, started_at=minute(start), **visitor)
    if end is not None:
        response = api.client.post(
            f"/v1/sessions/{session['id']}/exit", json={"at": minute(end)}, headers=api.app
        )
        assert response.status_code == 200, response.text
    return session


@given(
    parsers.re(
        r'viewer "(?P<viewer>[^"]+)" watched webinar "(?P<webinar>[^"]+)" '
        r"from minute (?P<start>\d+) to minute (?P<end>\d+)( in a second tab)?"
    )
)
def watched(api: Api, viewer: str, webinar: str, start: str, end: str) -> None:
    visit(api, webinar, int(start), int(end), subject_id=viewer)


@given(
    parsers.parse('viewer "{viewer}" has been watching webinar "{webinar}" since minute {start:d}')
)
def watching(api: Api, viewer: str, webinar: str, start: int) -> None:
    visit(api, webinar, start, None, subject_id=viewer)


@when(
    parsers.parse('an analyst asks for the watch time of webinar "{webinar}"'),
    target_fixture="report",
)
def watch_time(api: Api, webinar: str) -> dict[str, Any]:
    response = api.client.get(
        "/v1/reports/watch-time", params={"resource_id": webinar}, headers=api.admin
    )
    assert response.status_code == 200, response.text
    return {row["subject_id"]: row for row in response.json()["items"]}


@when("an analyst asks for the webinars report", target_fixture="report")
def webinars(api: Api) -> dict[str, Any]:
    response = api.client.get("/v1/reports/resources", headers=api.admin)
    assert response.status_code == 200, response.text
    return {row["resource_id"]: row for row in response.json()["items"]}


@then(
    parsers.re(
        r'"(?P<viewer>[^"]+)" made (?P<visits>\d+) visits? for (?P<total>\d+) seconds in '
        r"total, (?P<avg>\d+) on average, and watched (?P<unique>\d+) seconds"
    )
)
def viewer_figures(
    report: dict[str, Any], viewer: str, visits: str, total: str, avg: str, unique: str
) -> None:
    row = report[viewer]
    assert (
        row["visit_count"],
        row["total_seconds"],
        row["avg_seconds"],
        row["unique_seconds"],
    ) == (int(visits), float(total), float(avg), float(unique))


@then(
    parsers.parse(
        'webinar "{webinar}" had {sessions:d} sessions from {viewers:d} viewers, {avg:d} seconds on average'
    )
)
def webinar_figures(
    report: dict[str, Any], webinar: str, sessions: int, viewers: int, avg: int
) -> None:
    row = report[webinar]
    assert (row["total_sessions"], row["unique_subjects"], row["avg_duration_seconds"]) == (
        sessions,
        viewers,
        float(avg),
    )


@then(
    parsers.parse(
        '{now:d} viewer is watching "{webinar}" now, and at most {peak:d} watched at once'
    )
)
def now_and_peak(api: Api, report: dict[str, Any], now: int, webinar: str, peak: int) -> None:
    assert (report[webinar]["active_now"], report[webinar]["peak_concurrency"]) == (now, peak)
    active = api.client.get(
        "/v1/reports/active", params={"resource_id": webinar}, headers=api.admin
    )
    assert active.json() == {"active": now}


@given(parsers.parse('these visits to webinar "{webinar}":'), target_fixture="visits")
def visits_table(api: Api, webinar: str, datatable: list[list[str]]) -> list[dict[str, Any]]:
    header, *rows = datatable  # who, and: signed in (default yes), agency, from/to minute
    made = []
    for row in rows:
        seen = dict(zip(header, row, strict=True))
        who, end, agency = seen["who"], seen["to minute"], seen.get("agency")
        # A viewer who did not sign in is known by the key of their browser.
        signed_in = seen.get("signed in", "yes") == "yes"
        visitor = {"subject_id": who} if signed_in else {"subject_id": None, "client_key": who}
        attributes = {"agency": agency} if agency else {}
        start = int(seen["from minute"])
        made.append(
            visit(api, webinar, start, int(end) if end else None, **visitor, attributes=attributes)
        )
    return made


@then(
    parsers.parse(
        'webinar "{webinar}" had {sessions:d} sessions from {visitors:d} unique visitors, '
        "{signed_in:d} of them signed in"
    )
)
def unique_visitors(
    report: dict[str, Any], webinar: str, sessions: int, visitors: int, signed_in: int
) -> None:
    row = report[webinar]
    assert (row["total_sessions"], row["unique_visitors"], row["unique_subjects"]) == (
        sessions,
        visitors,
        signed_in,
    )


@then(parsers.parse('the sessions of browser "{browser}" are listed apart'))
def listed_by_browser(api: Api, visits: list[dict[str, Any]], browser: str) -> None:
    response = api.client.get("/v1/sessions", params={"client_key": browser}, headers=api.app)
    assert response.status_code == 200, response.text
    expected = [v["id"] for v in visits if v["client_key"] == browser]
    assert sorted(s["id"] for s in response.json()["items"]) == sorted(expected)


@then(
    parsers.parse(
        '{ended:d} of the {sessions:d} sessions of webinar "{webinar}" really ended, '
        "and {going:d} are still going"
    )
)
def really_ended(
    report: dict[str, Any], ended: int, sessions: int, webinar: str, going: int
) -> None:
    row = report[webinar]
    assert (row["ended_sessions"], row["total_sessions"], row["active_now"]) == (
        ended,
        sessions,
        going,
    )


@given("the webinar team's reports keep agencies apart")
def agencies_apart(api: Api) -> None:
    response = api.client.put("/v1/settings", json={"dimensions": ["agency"]}, headers=api.admin)
    assert response.status_code == 200, response.text


@when(
    parsers.parse('an analyst asks for the watch time of webinar "{webinar}" per agency'),
    target_fixture="report",
)
def watch_time_per_agency(api: Api, webinar: str) -> list[dict[str, Any]]:
    params = {"resource_id": webinar, "group_by": "attributes.agency"}
    response = api.client.get("/v1/reports/watch-time", params=params, headers=api.admin)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


@then(parsers.parse("the watch time per agency reads:"))
def watch_time_per_agency_reads(report: list[dict[str, Any]], datatable: list[list[str]]) -> None:
    read = [
        [
            "no agency" if g["group"] is None else g["group"],
            str(g["visit_count"]),
            f"{g['total_seconds']:g}",
            f"{g['avg_seconds']:g}",
            f"{g['unique_seconds']:g}",
        ]
        for g in report
    ]
    assert read == datatable[1:]
    assert all(g["subject_id"] is None for g in report)


# The kiosk operator's funnel: each screen a stage, matched by its event (and label).
@given(parsers.parse("the operator defines the photo kiosk's funnel:"), target_fixture="screens")
def photo_funnel(api: Api, datatable: list[list[str]]) -> dict[str, dict[str, str]]:
    _, *rows = datatable  # stage, event, label
    screens = {
        stage: {"type": event, **({"label": label} if label else {})}
        for stage, event, label in rows
    }
    body = {"kind": "kiosk", "stages": [{"name": n, "match": m} for n, m in screens.items()]}
    response = api.client.put("/v1/funnels/photo", json=body, headers=api.admin)
    assert response.status_code == 200, response.text
    return screens


ENDINGS = {"still there": None}


@given(parsers.parse("these customers at the kiosk today:"))
def customers(api: Api, screens: dict[str, dict[str, str]], datatable: list[list[str]]) -> None:
    """Each customer a kiosk session, each screen an event `seconds on each` after the one
    before, and the exit that long after the last."""
    _, *rows = datatable  # customer, screens, seconds on each, how it ended
    for customer, seen, seconds, ended in rows:
        start = MINUTE_0 + timedelta(minutes=15 * int(customer))
        step = timedelta(seconds=int(seconds))
        session = api.start(
            kind="kiosk", resource_id="kiosk-1", subject_id=None,
            client_key=f"customer-{customer}", started_at=start.isoformat(),
        )  # fmt: skip
        names = [s.strip() for s in seen.split(",") if s.strip()]
        events = [
            {"session_id": session["id"], "sequence_no": n, "at": (start + n * step).isoformat(),
             **screens[name]}
            for n, name in enumerate(names, start=1)
        ]  # fmt: skip
        if events:
            sent = api.client.post("/v1/events/batch", json={"events": events}, headers=api.app)
            assert sent.status_code == 200 and sent.json()["failed"] == 0, sent.text
        status = ENDINGS.get(ended, ended)
        if status is not None:
            end = start + (len(names) + 1) * step
            left = api.client.post(
                f"/v1/sessions/{session['id']}/exit",
                json={"at": end.isoformat(), "status": status},
                headers=api.app,
            )
            assert left.status_code == 200, left.text


@when("the operator asks for the funnel report", target_fixture="report")
def funnel_report(api: Api) -> dict[str, Any]:
    response = api.client.get("/v1/reports/funnel/photo", headers=api.admin)
    assert response.status_code == 200, response.text
    return dict(response.json())


def percent(ratio: float | None) -> str:
    return "" if ratio is None else f"{round(ratio * 100, 2):g}%"


# What the operator's columns say of a stage's figures.
STAGE_COLUMNS = {
    "reached": lambda s: str(s["reached"]),
    "from previous": lambda s: percent(s["conversion_from_previous"]),
    "from start": lambda s: percent(s["conversion_from_start"]),
    "gave up here": lambda s: str(s["dropped_here"]),
    "median seconds": lambda s: (
        "" if s["median_seconds_in_stage"] is None else f"{s['median_seconds_in_stage']:g}"
    ),
}


@then(parsers.parse("the funnel reads:"))
def funnel_reads(report: dict[str, Any], datatable: list[list[str]]) -> None:
    (_, *columns), *rows = datatable
    stages = {s["name"]: s for s in report["stages"]}
    found = [[name, *(STAGE_COLUMNS[c](stages[name]) for c in columns)] for name, *_ in rows]
    assert found == rows


@then(parsers.parse("the sessions ended like this:"))
def ended_like(report: dict[str, Any], datatable: list[list[str]]) -> None:
    statuses, counts = datatable
    assert {s: report["exit_statuses"][s] for s in statuses} == dict(
        zip(statuses, map(int, counts), strict=True)
    )


SEOUL = ZoneInfo("Asia/Seoul")
DAYS_AGO = {"two days ago": 2, "yesterday": 1}


def seoul_day(day: str) -> date:
    return (datetime.now(SEOUL) - timedelta(days=DAYS_AGO[day])).date()


@given("a kiosk operator in Seoul whose reports keep stores apart")
def operator_in_seoul(api: Api) -> None:
    settings = {"time_zone": "Asia/Seoul", "dimensions": ["store_id"]}
    response = api.client.put("/v1/settings", json=settings, headers=api.admin)
    assert response.status_code == 200, response.text


@given(parsers.parse("these booth sessions, in Seoul's time:"))
def booth_sessions(api: Api, datatable: list[list[str]]) -> None:
    header, *rows = datatable
    for row in rows:
        visit = dict(zip(header, row, strict=True))
        store, day, start, end = visit["store"], visit["day"], visit["from"], visit["to"]
        started = datetime.combine(seoul_day(day), time.fromisoformat(start), SEOUL)
        ended = datetime.combine(seoul_day(day), time.fromisoformat(end), SEOUL)
        if ended < started:  # past midnight
            ended += timedelta(days=1)
        session = api.start(
            kind="booth",
            resource_id="booth-1",
            started_at=started.isoformat(),
            attributes={"store_id": store},
        )
        exit = {"at": ended.isoformat(), "status": visit.get("how it ended", "completed")}
        response = api.client.post(f"/v1/sessions/{session['id']}/exit", json=exit, headers=api.app)
        assert response.status_code == 200, response.text


@when(
    "the usage is rolled up and the operator asks for it by day and store",
    target_fixture="report",
)
def usage_by_store(api: Api) -> dict[str, Any]:
    since = datetime.now(UTC) - timedelta(days=3)
    api.run(lambda: api.container.jobs.roll_up_usage()(RollUpUsageCommand("acme", since=since)))
    params = {"bucket": "day", "group_by": "attributes.store_id"}
    response = api.client.get("/v1/reports/usage", params=params, headers=api.admin)
    assert response.status_code == 200, response.text
    return dict(response.json())


@then(parsers.parse("the usage reads:"))
def usage_reads(report: dict[str, Any], datatable: list[list[str]]) -> None:
    days = {seoul_day(day).isoformat(): day for day in DAYS_AGO}
    read = [
        [
            days[b["label"]],
            b["group"],
            str(b["sessions_started"]),
            str(b["sessions_ended"]),
            f"{b['active_seconds'] / 60:g}",
        ]
        for b in report["items"]
        if b["label"] in days and b["group"] is not None
    ]
    assert read == datatable[1:]


@when(
    parsers.parse("the usage is rolled up and the operator asks for the summary of {day}"),
    target_fixture="report",
)
def daily_summary(api: Api, day: str) -> dict[str, Any]:
    since = datetime.now(UTC) - timedelta(days=3)
    api.run(lambda: api.container.jobs.roll_up_usage()(RollUpUsageCommand("acme", since=since)))
    params = {"date": seoul_day(day).isoformat(), "group_by": "attributes.store_id"}
    response = api.client.get("/v1/reports/daily", params=params, headers=api.admin)
    assert response.status_code == 200, response.text
    return dict(response.json())


@then(parsers.parse("the summary reads:"))
def summary_reads(report: dict[str, Any], datatable: list[list[str]]) -> None:
    read = [
        [
            g["group"],
            str(g["sessions_started"]),
            str(g["completed"]),
            str(g["abandoned"]),
            f"{g['completion_rate']:.0%}",
            f"{g['average_duration_seconds'] / 60:g}",
        ]
        for g in report["items"]
    ]
    assert read == datatable[1:]
