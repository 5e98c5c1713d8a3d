"""`sessionmeter report daily`: a store's day for a terminal, a script (JSON) or a spreadsheet
(CSV)."""

import csv
import io
import json
from datetime import UTC, datetime, timedelta

from application.rollups.roll_up_usage import RollUpUsageCommand
from application.sessions.record_exit import RecordExitCommand
from application.sessions.start_session import StartSessionCommand
from domain.session import SessionRequest
from entrypoints.container import build_container
from entrypoints.settings import Settings
from tests.cli.test_cli import sessionmeter, url  # noqa: F401 (the fixture)
from tests.conftest import run_async

YESTERDAY = (datetime.now(UTC) - timedelta(days=1)).replace(hour=9, minute=0, microsecond=0)


def two_booths_yesterday(storage_url: str) -> None:
    container = build_container(Settings(storage_url=storage_url))
    uc = container.use_cases

    async def booths() -> None:
        storage = container.storage.backend()
        tenant = await storage.tenants.get_by_name("acme")
        assert tenant is not None
        for booth, minutes, status in (("booth-1", 10, "completed"), ("booth-2", 20, "abandoned")):
            request = SessionRequest("kiosk", booth, client_key="walk-in", started_at=YESTERDAY)
            started = await uc.start_session()(StartSessionCommand(tenant.id, request))
            end = YESTERDAY + timedelta(minutes=minutes)
            await uc.record_exit()(RecordExitCommand(tenant.id, started.session.id, end, status))
        await container.jobs.roll_up_usage()(RollUpUsageCommand("acme", since=YESTERDAY))
        await storage.close()

    run_async(booths)


def test_the_daily_summary_prints_as_a_table_json_or_csv(url: str) -> None:  # noqa: F811
    sessionmeter(url, "db", "upgrade")
    sessionmeter(url, "tenants", "create", "acme")
    two_booths_yesterday(url)
    day = ("report", "daily", "--tenant", "acme", "--date", f"{YESTERDAY:%Y-%m-%d}")

    table = sessionmeter(url, *day)
    as_json = sessionmeter(url, *day, "--format", "json")
    as_csv = sessionmeter(url, *day, "--format", "csv")
    undeclared = sessionmeter(url, *day, "--group-by", "attributes.store_id")

    assert as_json.exit_code == 0, as_json.output
    summary = json.loads(as_json.output)
    assert summary["date"] == f"{YESTERDAY:%Y-%m-%d}"
    assert [(g["group"], g["completed"], g["abandoned"]) for g in summary["items"]] == [
        ("booth-1", 1, 0),
        ("booth-2", 0, 1),
    ]
    rows = list(csv.DictReader(io.StringIO(as_csv.output)))
    assert [(r["group"], r["average_duration_seconds"]) for r in rows] == [
        ("booth-1", "600.0"),
        ("booth-2", "1200.0"),
    ]
    assert table.exit_code == 0 and "booth-2" in table.output and "completion_rate" in table.output
    assert undeclared.exit_code != 0 and "group_by" in undeclared.output
