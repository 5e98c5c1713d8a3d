"""GET /metrics: what the service counts, labelled by route template and outcome, never by id;
the request id every answer carries; the token that closes /metrics when it is set.

Every binding of the app counts from zero (entrypoints/http/app.bind), so the counts below are
this test's own."""

import re
from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient

from entrypoints.http.metrics import MAX_KINDS, OTHER, Metrics
from tests.app_client import Api, app_of_its_own
from tests.http.envelope import assert_error
from tests.http.test_credits_api import counseling_rate, grant, record
from tests.http.test_events_api import event
from tests.http.test_trials_api import FREE, put_plan
from tests.metrics_samples import Samples, samples_of, value

# What is counted does not depend on the store.
on_memory = pytest.mark.parametrize("storage_url", ["memory"], indirect=True)


def samples(client: TestClient[Any], **headers: str) -> Samples:
    answer = client.get("/metrics", headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return samples_of(answer.text)


@on_memory
def test_requests_are_counted_by_route_template_never_by_id(api: Api) -> None:
    session = api.start()
    exited = api.client.post(f"/v1/sessions/{session['id']}/exit", headers=api.app)
    assert exited.status_code == 200
    assert api.client.get(f"/v1/sessions/{session['id']}", headers=api.app).status_code == 200

    found = samples(api.client)

    requests = "sessionmeter_http_requests_total"
    exit_route = "/v1/sessions/{session_id}/exit"
    assert value(found, requests, method="POST", route="/v1/sessions", status="201") == 1
    assert value(found, requests, method="POST", route=exit_route, status="200") == 1
    read = {"method": "GET", "route": "/v1/sessions/{session_id}", "status": "200"}
    assert value(found, requests, **read) == 1
    durations = "sessionmeter_http_request_duration_seconds_count"
    assert value(found, durations, route=exit_route) == 1
    labels = {label for _, pairs in found for _, label in pairs}
    assert not any(session["id"] in label for label in labels)
    assert not any("acme" in label for label in labels)  # nor a tenant


@on_memory
def test_a_path_no_route_matches_is_counted_as_unmatched(api: Api) -> None:
    missing = api.client.get("/v1/no-such-thing/12345", headers=api.app)
    assert_error(missing, 404, "not_found")

    found = samples(api.client)

    counted = {"method": "GET", "route": "unmatched", "status": "404"}
    assert value(found, "sessionmeter_http_requests_total", **counted) == 1
    assert not any("12345" in label for _, pairs in found for _, label in pairs)


@on_memory
def test_every_answer_carries_a_request_id_the_clients_when_it_is_sane(api: Api) -> None:
    sane = api.client.get("/health", headers={"X-Request-ID": "trace-01.AB_c"})
    refused = api.client.get("/v1/sessions", headers={"X-Request-ID": "trace-02"})
    missing = api.client.get("/nowhere")
    too_long = api.client.get("/health", headers={"X-Request-ID": "a" * 129})
    odd = api.client.get("/health", headers={"X-Request-ID": "two words"})

    assert sane.headers["x-request-id"] == "trace-01.AB_c"
    assert (refused.status_code, refused.headers["x-request-id"]) == (401, "trace-02")
    for generated in (missing, too_long, odd):
        assert re.fullmatch("[0-9a-f]{32}", generated.headers["x-request-id"])
    assert len({r.headers["x-request-id"] for r in (missing, too_long, odd)}) == 3


@on_memory
def test_refusals_count_by_their_code(api: Api) -> None:
    put_plan(api, "free", FREE)
    counseling_rate(api)
    api.client.put(
        "/v1/settings", json={"overdraft": "hard", "min_start_credits": 20}, headers=api.admin
    )
    api.start(kind="practice", resource_id="pdf-1", subject_id="mina")
    trial = api.client.post(
        "/v1/sessions",
        json={"kind": "practice", "resource_id": "pdf-1", "subject_id": "mina"},
        headers=api.app,
    )
    credits = api.client.post(
        "/v1/sessions",
        json={"kind": "counseling", "resource_id": "room", "subject_id": "dr-cho"},
        headers=api.app,
    )
    assert_error(trial, 402, "trial_exhausted")
    assert_error(credits, 402, "insufficient_credits")

    found = samples(api.client)

    refusals = "sessionmeter_refusals_total"
    assert value(found, refusals, reason="trial_exhausted") == 1
    assert value(found, refusals, reason="insufficient_credits") == 1
    assert value(found, "sessionmeter_sessions_started_total", kind="practice") == 1
    assert value(found, "sessionmeter_sessions_started_total", kind="counseling") == 0


@on_memory
def test_events_count_as_inserted_duplicate_or_failed(api: Api) -> None:
    session = api.start()
    events = [event(session, n) for n in range(1, 4)]
    first = api.client.post("/v1/events/batch", json={"events": events}, headers=api.app)
    again = api.client.post(
        "/v1/events/batch", json={"events": [*events, {"type": "tap"}]}, headers=api.app
    )
    assert first.json()["inserted"] == 3
    assert (again.json()["duplicates"], again.json()["failed"]) == (3, 1)

    found = samples(api.client)

    assert value(found, "sessionmeter_events_total", outcome="inserted") == 3
    assert value(found, "sessionmeter_events_total", outcome="duplicate") == 3
    assert value(found, "sessionmeter_events_total", outcome="failed") == 1


@on_memory
def test_a_clients_exit_counts_once_with_the_credits_it_charged(api: Api) -> None:
    counseling_rate(api)
    grant(api, "dr-kim", 100, "welcome-kim")
    ended = record(api, "dr-kim", 12.5)
    replayed = api.client.post(f"/v1/sessions/{ended['id']}/exit", headers=api.app)
    assert replayed.status_code == 200
    abandoned = api.start(kind="webinar", subject_id="viewer")
    api.client.post(
        f"/v1/sessions/{abandoned['id']}/exit", json={"status": "abandoned"}, headers=api.app
    )

    found = samples(api.client)

    closed = "sessionmeter_sessions_closed_total"
    assert value(found, closed, kind="counseling", status="completed", by="client") == 1
    assert value(found, closed, kind="webinar", status="abandoned", by="client") == 1
    assert ended["charge"]["credits"] == 25
    assert value(found, "sessionmeter_credits_charged_total") == 25
    assert value(found, "sessionmeter_sessions_started_total", kind="counseling") == 1


def test_kinds_beyond_the_cap_count_as_other() -> None:
    metrics = Metrics()
    for n in range(MAX_KINDS + 10):
        metrics.session_started(f"kind-{n}")
    metrics.session_started("kind-0")

    found = {
        dict(labels)["kind"]: count
        for (name, labels), count in samples_of(metrics.exposition().decode()).items()
        if name == "sessionmeter_sessions_started_total"
    }

    assert len(found) == MAX_KINDS + 1
    assert (found["kind-0"], found[OTHER]) == (2, 10)


@pytest.fixture
def guarded() -> Iterator[TestClient[Any]]:
    with app_of_its_own(metrics_token="scrape-token-1") as client:
        yield client


def test_a_metrics_token_once_set_is_asked_for(guarded: TestClient[Any]) -> None:
    wrong = guarded.get("/metrics", headers={"Authorization": "Bearer scrape-token-2"})
    missing = guarded.get("/metrics")
    an_api_key = guarded.get("/metrics", headers={"X-API-Key": "scrape-token-1"})

    for refused in (wrong, missing, an_api_key):
        assert_error(refused, 401, "unauthorized")
        assert "scrape-token" not in refused.text
    scraped = samples(guarded, Authorization="Bearer scrape-token-1")
    assert (
        "sessionmeter_http_requests_total",
        frozenset({("method", "GET"), ("route", "/metrics"), ("status", "401")}),
    ) in scraped


def test_the_schema_declares_metrics_as_text_or_401() -> None:
    with app_of_its_own() as client:
        operation = client.get("/schema/openapi.json").json()["paths"]["/metrics"]["get"]

    assert set(operation["responses"]) == {"200", "401"}
    assert list(operation["responses"]["200"]["content"]) == ["text/plain"]
    assert "application/json" in operation["responses"]["401"]["content"]
