"""Background jobs go tenant by tenant: one tenant that cannot be served is reported, and every
other tenant is still served by the same run."""

from datetime import timedelta

import pytest

from adapters.memory.storage import MemoryStorage
from application.ports import Window
from application.retention.apply_retention import ApplyRetentionCommand
from application.rollups.roll_up_usage import RollUpUsageCommand
from domain.calendar import Period, hour_of
from domain.rollups import Rollup
from domain.tenants import Tenant
from entrypoints.container.jobs import JobContainer
from tests.fakes import FakeClock
from tests.unit.conftest import Starter, TenantMaker

pytestmark = pytest.mark.anyio


def make_unusable(tenant: Tenant) -> None:
    """Settings as stored that no job can compute with (no version of the API accepts them):
    retention so long that its cutoff lies before the first instant there is."""
    object.__setattr__(tenant.settings, "event_retention_days", 10**9)


async def test_a_tenant_whose_rollup_fails_is_reported_its_lease_given_back_and_others_served(
    storage: MemoryStorage,
    tenant: Tenant,
    make_tenant: TenantMaker,
    start: Starter,
    jobs: JobContainer,
    clock: FakeClock,
) -> None:
    make_unusable(tenant)  # acme: the first served
    fine = await make_tenant("bootcamp")
    await start(fine)
    clock.advance(3600)
    roll_up = jobs.roll_up_usage()

    run = await roll_up(RollUpUsageCommand())

    assert [(f.tenant_name, f.error.split(":")[0]) for f in run.failures] == [
        ("acme", "OverflowError")
    ]
    assert (run.tenants, run.hours, run.days) == (1, 1, 1)
    [hour] = await storage.rollups.find(fine.id, Period.HOUR, Window())
    assert hour.activity[0].sessions_started == 1
    now = clock.now()
    lease = await storage.rollup_leases.acquire(tenant.id, "next run", now, now + timedelta(1))
    assert lease is not None and lease.resume_from == tenant.created_at


async def test_a_tenant_whose_retention_fails_is_reported_and_others_served(
    storage: MemoryStorage,
    tenant: Tenant,
    make_tenant: TenantMaker,
    jobs: JobContainer,
    clock: FakeClock,
) -> None:
    make_unusable(tenant)
    fine = await make_tenant("bootcamp")
    old_hour = hour_of(clock.now() - timedelta(days=100))
    await storage.rollups.replace(fine.id, Rollup(Period.HOUR, old_hour))

    deleted = await jobs.apply_retention()(ApplyRetentionCommand())

    assert [f.tenant_name for f in deleted.failures] == ["acme"]
    assert deleted.hourly_rollups == 1
    assert await storage.rollups.find(fine.id, Period.HOUR, Window()) == []
