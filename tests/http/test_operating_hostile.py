"""Hostile review of "Operating it" (issue 16): what reached the log, or the metrics, that must
not have."""

import logging
import sqlite3

import pytest
from litestar.testing import TestClient

from entrypoints.container import build_container
from entrypoints.http.app import create_app
from entrypoints.settings import Settings
from tests.app_client import Api
from tests.http.envelope import assert_error

on_sqlite = pytest.mark.parametrize("storage_url", ["sqlite"], indirect=True)


@on_sqlite
def test_a_failed_statement_logs_no_value_of_the_request(
    api: Api, storage_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A statement the database refuses (here: a table gone) is logged with its traceback for the
    operator, and SQLAlchemy's message carries the statement's parameters: the request's body
    (subject ids, attributes) would be in the log."""
    database = sqlite3.connect(storage_url.removeprefix("sqlite:///"))
    database.execute("ALTER TABLE sessions RENAME TO sessions_gone")
    database.commit()
    database.close()
    body = {
        "kind": "webinar",
        "resource_id": "private-resource-42",
        "subject_id": "private-subject-42",
        "attributes": {"email": "private-attribute@example.com"},
    }

    with caplog.at_level(logging.INFO):
        failed = api.client.post("/v1/sessions", json=body, headers=api.app)

    assert_error(failed, 503, "unavailable")
    assert failed.headers["Retry-After"] == "5"
    logged = "\n".join(
        logging.Formatter().format(record) for record in caplog.records
    )  # tracebacks included
    assert "sessions" in logged  # the operator still learns what failed
    assert [value for value in ("private-subject-42", "private-attribute") if value in logged] == []


def test_a_metrics_token_read_from_a_file_with_its_newline_still_opens_metrics(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A token kept in a file (a Kubernetes secret, `echo token > file`) ends with a newline;
    Prometheus trims the token it reads from its own file, so the newline would shut the scraper
    out for good."""
    monkeypatch.setenv("SESSIONMETER_METRICS_TOKEN", "scrape-token-1\n")
    monkeypatch.setenv("SESSIONMETER_STORAGE_URL", "memory://")
    settings = Settings.from_env(
        reaper_interval_seconds=0,
        retention_interval_seconds=0,
        rollup_interval_seconds=0,
        livekit_reconcile_interval_seconds=0,
    )

    with TestClient(create_app(build_container(settings), settings)) as client:
        scraped = client.get("/metrics", headers={"Authorization": "Bearer scrape-token-1"})
        refused = client.get("/metrics", headers={"Authorization": "Bearer "})

    assert scraped.status_code == 200, scraped.text
    assert_error(refused, 401, "unauthorized")
