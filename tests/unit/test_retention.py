"""Retention as a tenant's settings say: hourly rollups 90 days, daily rollups for good unless
the tenant sets a window."""

from datetime import timedelta

import pytest

from adapters.memory.storage import MemoryStorage
from application.ports import Window
from application.retention.apply_retention import ApplyRetentionCommand
from domain.rollups import Period, Rollup
from domain.tenants import Tenant, TenantSettings
from entrypoints.container.jobs import JobContainer
from tests.fakes import FakeClock

pytestmark = pytest.mark.anyio


async def test_old_hourly_rollups_go_and_daily_ones_stay_until_a_window_is_set(
    storage: MemoryStorage, jobs: JobContainer, tenant: Tenant, clock: FakeClock
) -> None:
    now = clock.now()
    for days_ago in (91, 89):
        start = Period.HOUR.start_of(now - timedelta(days=days_ago))
        await storage.rollups.replace(tenant.id, Rollup(Period.HOUR, start))
    old_day = Period.DAY.start_of(now - timedelta(days=400))
    await storage.rollups.replace(tenant.id, Rollup(Period.DAY, old_day))
    apply = jobs.apply_retention()

    by_default = await apply(ApplyRetentionCommand("acme"))
    await storage.tenants.update_settings(
        tenant.id, TenantSettings(daily_rollup_retention_days=365)
    )
    with_a_window = await apply(ApplyRetentionCommand("acme"))

    assert (by_default.hourly_rollups, by_default.daily_rollups) == (1, 0)
    assert (with_a_window.hourly_rollups, with_a_window.daily_rollups) == (0, 1)
    kept = await storage.rollups.find(tenant.id, Period.HOUR, Window())
    assert [r.start for r in kept] == [Period.HOUR.start_of(now - timedelta(days=89))]
