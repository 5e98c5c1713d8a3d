"""Moving a tenant between stores with `sessionmeter export` and `sessionmeter import`."""

import itertools
from functools import partial
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from application.credits.get_balance import GetBalanceQuery
from application.reports.report_active import ReportActiveQuery
from application.reports.report_resources import ReportResourcesQuery
from application.reports.report_usage_stats import ReportUsageStatsQuery
from application.reports.report_watch_time import ReportWatchTimeQuery
from application.trials.get_trial_status import GetTrialStatusQuery
from entrypoints.cli.main import cli
from entrypoints.container import build_container
from entrypoints.settings import Settings
from tests.conftest import _database_url, open_storage, psql, run_async
from tests.contract.builders import a_tenant_with_everything
from tests.servers import MongoServer


def sessionmeter(url: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--storage-url", url, *args])


async def _fill(url: str) -> str:
    storage = open_storage(url)
    try:
        await storage.migrate()
        return (await a_tenant_with_everything(storage)).id
    finally:
        await storage.close()


async def _figures(url: str, tenant_id: str) -> dict[str, Any]:
    """What the tenant's users and admins see: balances, trial statuses and reports."""
    c = build_container(Settings(storage_url=url))
    try:
        return {
            "balances": [
                await c.use_cases.get_balance()(GetBalanceQuery(tenant_id, s))
                for s in ("ana", "jun")
            ],
            "trials": [
                await c.use_cases.get_trial_status()(GetTrialStatusQuery(tenant_id, s, r))
                for s, r in (("ana", "pdf-1"), ("jun", "webinar-1"))
            ],
            "watch time": await c.use_cases.report_watch_time()(
                ReportWatchTimeQuery(tenant_id, "pdf-1")
            ),
            "resources": await c.use_cases.report_resources()(ReportResourcesQuery(tenant_id)),
            "usage": await c.use_cases.report_usage_stats()(
                ReportUsageStatsQuery(tenant_id, "ana")
            ),
            "active": (
                await c.use_cases.report_active()(ReportActiveQuery(tenant_id, None))
            ).active,
        }
    finally:
        await c.storage.backend().close()


def test_a_tenant_moves_from_sqlite_to_postgresql_to_mongodb_and_keeps_every_figure(
    tmp_path: Path, postgres_url: str, mongodb_server: MongoServer
) -> None:
    sqlite = f"sqlite:///{tmp_path}/before.db"
    psql(postgres_url, "DROP DATABASE IF EXISTS transfer")
    psql(postgres_url, "CREATE DATABASE transfer")
    stores = [
        sqlite,
        _database_url(postgres_url, "transfer"),
        mongodb_server.database_url("transfer"),
    ]
    tenant_id = run_async(lambda: _fill(sqlite))

    for source, target in itertools.pairwise(stores):
        exported = sessionmeter(source, "export", "--tenant", "exam-prep")
        assert exported.exit_code == 0, exported.output
        file = tmp_path / "exam-prep.jsonl"
        file.write_text(exported.output)
        assert sessionmeter(target, "db", "upgrade").exit_code == 0
        imported = sessionmeter(target, "import", str(file))
        again = sessionmeter(target, "import", str(file))
        assert imported.exit_code == 0 and "4 session, 6 event" in imported.output, imported.output
        assert again.output.startswith("imported: nothing"), again.output

    exports = [sessionmeter(url, "export", "--tenant", "exam-prep").output for url in stores]
    assert exports[0] == exports[1] == exports[2]
    figures = [run_async(partial(_figures, url, tenant_id)) for url in stores]
    assert figures[0] == figures[1] == figures[2]
    assert figures[0]["balances"][0].consumed == 8 and figures[0]["usage"].meters


def test_an_unknown_tenant_or_a_broken_line_is_one_line_of_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/store.db"
    sessionmeter(url, "db", "upgrade")
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"record": "sessionmeter-export", "version": 1}\n{"record": "nope"}\n')

    unknown = sessionmeter(url, "export", "--tenant", "nobody")
    garbled = sessionmeter(url, "import", str(broken))

    assert unknown.exit_code == 1 and unknown.stderr.splitlines() == [
        "Error: no tenant named nobody"
    ]
    assert garbled.exit_code == 1
    assert garbled.stderr.startswith("Error: line 2: not a record of this format")
