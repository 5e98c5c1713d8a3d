"""`sessionmeter report trials`: the exam-prep app's trial figures for a terminal, a script
(JSON) or a spreadsheet (CSV)."""

import csv
import io
import json
from contextlib import suppress
from datetime import UTC, datetime, timedelta

from application.sessions.start_session import StartSessionCommand
from application.trials.set_plan import SetPlanCommand
from application.trials.subscribe import SubscribeCommand
from domain.plans import Plan, PlanLimits, Subscription, TrialExhausted
from domain.session import SessionRequest
from entrypoints.container import build_container
from entrypoints.settings import Settings
from tests.cli.test_cli import sessionmeter, url  # noqa: F401 (the fixture)
from tests.conftest import run_async


def two_trials_one_paid(storage_url: str) -> None:
    """mina and jun each use their one free practice session and are refused one more; mina
    then buys a pass."""
    container = build_container(Settings(storage_url=storage_url))
    uc = container.use_cases

    async def trials() -> None:
        storage = container.storage.backend()
        tenant = await storage.tenants.get_by_name("acme")
        assert tenant is not None
        free = PlanLimits(sessions_per_resource=1, session_kinds=frozenset({"practice"}))
        await uc.set_plan()(SetPlanCommand(tenant.id, Plan("free", default=True, limits=free)))
        await uc.set_plan()(SetPlanCommand(tenant.id, Plan("pass", unlimited=True)))
        for subject in ("mina", "jun"):
            for _ in range(2):
                request = SessionRequest("practice", "pdf-1", subject_id=subject)
                with suppress(TrialExhausted):
                    await uc.start_session()(StartSessionCommand(tenant.id, request))
        ends = datetime.now(UTC) + timedelta(days=30)
        await uc.subscribe()(SubscribeCommand(tenant.id, Subscription("mina", "pass", ends)))
        await storage.close()

    run_async(trials)


def test_the_trial_report_prints_as_a_table_json_or_csv(url: str) -> None:  # noqa: F811
    sessionmeter(url, "db", "upgrade")
    sessionmeter(url, "tenants", "create", "acme")
    two_trials_one_paid(url)

    table = sessionmeter(url, "report", "trials", "--tenant", "acme")
    as_json = sessionmeter(url, "report", "trials", "--tenant", "acme", "--format", "json")
    as_csv = sessionmeter(url, "report", "trials", "--tenant", "acme", "--format", "csv")
    backwards = sessionmeter(
        url, "report", "trials", "--tenant", "acme",
        "--from", "2026-12-02T00:00:00Z", "--to", "2026-12-01T00:00:00Z",
    )  # fmt: skip

    assert as_json.exit_code == 0, as_json.output
    figures = json.loads(as_json.output)
    assert {k: v for k, v in figures.items() if k not in ("from", "to")} == {
        "trial_subjects": 2,
        "sessions_used": 2,
        "avg_sessions_per_subject": 1.0,
        "subjects_exhausted": 2,
        "conversions": 1,
        "conversion_rate": 0.5,
        "refused_starts": {"trial_exhausted": 2, "quota_exceeded": 0, "insufficient_credits": 0},
    }
    (row,) = csv.DictReader(io.StringIO(as_csv.output))
    assert (row["trial_subjects"], row["conversion_rate"], row["trial_exhausted"]) == (
        "2",
        "0.5",
        "2",
    )
    header, values = table.output.splitlines()
    assert header.split()[2:5] == ["trial_subjects", "sessions_used", "avg_sessions_per_subject"]
    assert values.split()[2:5] == ["2", "2", "1.0"]
    assert backwards.exit_code == 1 and "from" in backwards.stderr
