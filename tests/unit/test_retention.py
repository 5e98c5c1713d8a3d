"""Retention as a tenant's settings say: hourly rollups 90 days, daily rollups for good unless
the tenant sets a window; device errors a year, performance metrics 90 days, sales for good."""

import uuid
from datetime import timedelta

import pytest

from adapters.memory.storage import MemoryStorage
from application.ports import Window
from application.retention.apply_retention import ApplyRetentionCommand
from domain.calendar import Calendar, Period, hour_of
from domain.error_reports import ErrorFilter
from domain.rollups import Rollup
from domain.session import Session, SessionRequest
from domain.tenants import Tenant, TenantSettings
from entrypoints.container.jobs import JobContainer
from tests.contract.telemetry_builders import a_metric, a_sale, an_error
from tests.fakes import FakeClock

pytestmark = pytest.mark.anyio

UTC_DAYS = Calendar()


async def test_old_hourly_rollups_go_and_daily_ones_stay_until_a_window_is_set(
    storage: MemoryStorage, jobs: JobContainer, tenant: Tenant, clock: FakeClock
) -> None:
    now = clock.now()
    for days_ago in (91, 89):
        start = hour_of(now - timedelta(days=days_ago))
        await storage.rollups.replace(tenant.id, Rollup(Period.HOUR, start))
    old_day = UTC_DAYS.start_of(Period.DAY, now - timedelta(days=400))
    await storage.rollups.replace(tenant.id, Rollup(Period.DAY, old_day))
    apply = jobs.apply_retention()

    by_default = await apply(ApplyRetentionCommand("acme"))
    await storage.tenants.change_settings(
        tenant.id, lambda _: TenantSettings(daily_rollup_retention_days=365)
    )
    with_a_window = await apply(ApplyRetentionCommand("acme"))

    assert (by_default.hourly_rollups, by_default.daily_rollups) == (1, 0)
    assert (with_a_window.hourly_rollups, with_a_window.daily_rollups) == (0, 1)
    kept = await storage.rollups.find(tenant.id, Period.HOUR, Window())
    assert [r.start for r in kept] == [hour_of(now - timedelta(days=89))]


async def test_errors_go_after_a_year_metrics_after_90_days_and_sales_never(
    storage: MemoryStorage, jobs: JobContainer, tenant: Tenant, clock: FakeClock
) -> None:
    now = clock.now()
    session = Session.start(
        tenant.id,
        str(uuid.uuid4()),
        SessionRequest("kiosk", "kiosk-1", client_key="k", started_at=now - timedelta(days=800)),
        now,
    )
    await storage.sessions.add(session)
    for days_ago in (366, 364):
        at = now - timedelta(days=days_ago)
        await storage.errors.add(tenant.id, [an_error(f"e{days_ago}", at=at)])
    for days_ago in (91, 89):
        at = now - timedelta(days=days_ago)
        await storage.metrics.add(tenant.id, [a_metric(f"m{days_ago}", 10.0, started_at=at)])
    await storage.sales.add(
        tenant.id, [a_sale("old-sale", session.id, occurred_at=now - timedelta(days=800))]
    )

    deleted = await jobs.apply_retention()(ApplyRetentionCommand("acme"))

    assert (deleted.errors, deleted.metrics) == (1, 1)
    assert [e.id for e in await storage.errors.find(tenant.id, ErrorFilter(), Window(), 10)] == [
        "e364"
    ]
    assert await storage.sales.get_many(tenant.id, ["old-sale"]) != {}
    assert await storage.sessions.get(tenant.id, session.id) is not None
