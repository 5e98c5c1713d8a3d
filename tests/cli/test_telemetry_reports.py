"""`sessionmeter report errors|performance|sales`: the kiosk reports for an operator's terminal,
a script (JSON) or a spreadsheet (CSV)."""

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from application.telemetry.record_errors import RecordErrorsCommand
from application.telemetry.record_metrics import RecordMetricsCommand
from application.telemetry.record_sales import RecordSalesCommand
from domain.error_reports import Impact, Loss
from domain.session import Session, SessionRequest
from entrypoints.container import build_container
from entrypoints.settings import Settings
from tests.cli.test_cli import sessionmeter, url  # noqa: F401 (the fixture)
from tests.conftest import run_async
from tests.contract.telemetry_builders import a_metric, a_sale, amounts, an_error

NOW = datetime.now(UTC).replace(microsecond=0)


def a_kiosk_hour(storage_url: str) -> None:
    container = build_container(Settings(storage_url=storage_url))
    at = NOW - timedelta(minutes=30)

    async def hour() -> None:
        storage = container.storage.backend()
        tenant = await storage.tenants.get_by_name("acme")
        assert tenant is not None
        session = Session.start(
            tenant.id, "8c0e2d4a-1b3c-4d5e-8f9a-0b1c2d3e4f5a",
            SessionRequest("kiosk", "kiosk-1", client_key="k", started_at=at), NOW,
        )  # fmt: skip
        await storage.sessions.add(session)
        uc = container.use_cases
        loss = Impact(sale_lost=True, estimated_loss=Loss(Decimal("12000.5"), "KRW"))
        await uc.record_errors()(
            RecordErrorsCommand(
                tenant.id,
                [an_error(f"e{i}", at=at, device_id=f"kiosk-{i}", impact=loss) for i in (1, 2)],
            )
        )
        await uc.record_metrics()(
            RecordMetricsCommand(
                tenant.id, [a_metric(f"m{i}", 100.0 * i, started_at=at) for i in range(1, 5)]
            )
        )
        await uc.record_sales()(
            RecordSalesCommand(
                tenant.id,
                [a_sale("s1", session.id, occurred_at=at, amounts=amounts("20000.25"))],
            )
        )
        await storage.close()

    run_async(hour)


def test_the_kiosk_reports_print_as_a_table_json_or_csv(url: str) -> None:  # noqa: F811
    sessionmeter(url, "db", "upgrade")
    sessionmeter(url, "tenants", "create", "acme")
    a_kiosk_hour(url)

    errors = sessionmeter(url, "report", "errors", "--tenant", "acme", "--format", "json")
    per_day = sessionmeter(url, "report", "errors", "--tenant", "acme", "--group-by", "day")
    performance = sessionmeter(url, "report", "performance", "--tenant", "acme", "--format", "csv")
    sales = sessionmeter(url, "report", "sales", "--tenant", "acme", "--group-by", "day")
    bad = sessionmeter(url, "report", "sales", "--tenant", "acme", "--group-by", "store")

    assert errors.exit_code == 0, errors.output
    (fault,) = json.loads(errors.output)
    assert (fault["count"], fault["devices"], fault["estimated_loss"]) == (2, 2, {"KRW": "24001"})
    header, row = per_day.output.splitlines()  # the tenant's days are UTC's
    assert (header.split()[:2], row.split()[:1]) == (
        ["day", "fingerprint"],
        [(NOW - timedelta(minutes=30)).date().isoformat()],
    )
    rows = list(csv.DictReader(io.StringIO(performance.output)))
    assert [(r["type"], r["count"], r["p50_ms"], r["max_ms"]) for r in rows] == [
        ("capture", "4", "200.0", "400.0")
    ]
    header, row = sales.output.splitlines()
    assert header.split()[:4] == ["group", "currency", "count", "gross"]
    assert row.split()[:4] == [
        (NOW - timedelta(minutes=30)).date().isoformat(),
        "KRW",
        "1",
        "20000.25",
    ]
    assert bad.exit_code == 1 and "group_by" in bad.stderr
