"""`sessionmeter report funnel NAME`: where the kiosk's customers stopped, for an operator's
terminal, a script (JSON) or a spreadsheet (CSV)."""

import csv
import io
import json
from datetime import UTC, datetime, timedelta

from domain.events import Event
from domain.funnels import Funnel, Stage, StageMatch
from domain.session import Exit, Session, SessionRequest, SessionStatus
from entrypoints.container import build_container
from entrypoints.settings import Settings
from tests.cli.test_cli import sessionmeter, url  # noqa: F401 (the fixture)
from tests.conftest import run_async

NOW = datetime.now(UTC).replace(microsecond=0)
PHOTO = Funnel(
    "photo", "kiosk", (Stage("frame", StageMatch("frame")), Stage("print", StageMatch("print")))
)


def two_customers(storage_url: str) -> None:
    """One prints, one leaves after choosing a frame."""
    container = build_container(Settings(storage_url=storage_url))
    at = NOW - timedelta(minutes=30)

    async def customers() -> None:
        storage = container.storage.backend()
        tenant = await storage.tenants.get_by_name("acme")
        assert tenant is not None
        await storage.funnels.put(tenant.id, PHOTO)
        for n, (screens, status) in enumerate(
            [(["frame", "print"], SessionStatus.COMPLETED), (["frame"], SessionStatus.ABANDONED)]
        ):
            request = SessionRequest("kiosk", "kiosk-1", client_key=f"k{n}", started_at=at)
            session = Session.start(
                tenant.id, f"00000000-0000-4000-8000-00000000000{n}", request, NOW
            )
            await storage.sessions.add(session)
            events = [
                (i, Event(session.id, i + 1, type, at + timedelta(seconds=40 * i)))
                for i, type in enumerate(screens)
            ]
            await storage.events.append(tenant.id, events, NOW, timedelta(days=1))
            exit = Exit(at + timedelta(minutes=2), status)
            await storage.sessions.close(
                tenant.id, session.id, exit, frozenset(), NOW, timedelta(0)
            )
        await storage.close()

    run_async(customers)


def test_the_funnel_report_prints_as_a_table_json_or_csv(url: str) -> None:  # noqa: F811
    sessionmeter(url, "db", "upgrade")
    sessionmeter(url, "tenants", "create", "acme")
    two_customers(url)

    table = sessionmeter(url, "report", "funnel", "photo", "--tenant", "acme")
    as_json = sessionmeter(url, "report", "funnel", "photo", "--tenant", "acme", "--format", "json")
    as_csv = sessionmeter(url, "report", "funnel", "photo", "--tenant", "acme", "--format", "csv")
    unknown = sessionmeter(url, "report", "funnel", "quiz", "--tenant", "acme")
    before = sessionmeter(
        url, "report", "funnel", "photo", "--tenant", "acme",
        "--from", NOW.isoformat(), "--to", (NOW - timedelta(days=1)).isoformat(),
    )  # fmt: skip

    assert table.exit_code == 0, table.output
    header, frame, printed, _, totals = table.output.splitlines()
    assert header.split() == [
        "name", "reached", "conversion_from_previous", "conversion_from_start", "dropped_here",
        "median_seconds_in_stage",
    ]  # fmt: skip
    assert frame.split() == ["frame", "2", "1.0", "1.0", "1", "40.0"]
    assert printed.split() == ["print", "1", "0.5", "0.5", "0"]  # no median after the last stage
    assert totals.split()[:6] == ["sessions", "2", "active", "0", "completed", "1"]
    report = json.loads(as_json.output)
    assert (report["sessions"], report["exit_statuses"]["abandoned"]) == (2, 1)
    assert [s["reached"] for s in report["stages"]] == [2, 1]
    rows = list(csv.DictReader(io.StringIO(as_csv.output)))
    assert [(r["name"], r["dropped_here"]) for r in rows] == [("frame", "1"), ("print", "0")]
    assert unknown.exit_code == 1 and "no funnel quiz" in unknown.stderr
    assert before.exit_code == 1 and "from" in before.stderr
