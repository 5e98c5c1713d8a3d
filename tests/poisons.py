"""Data no job can process, written straight into a store (no version of the API writes it), to
show that one tenant's bad data stalls nobody else."""

from datetime import UTC, datetime, timedelta

from domain.calendar import Calendar, Period
from domain.rollups import Activity, Rollup
from tests.conftest import open_storage, run_async

UTC_DAYS = Calendar()


def overflowing_rollups(storage_url: str, tenant_name: str) -> None:
    """Two hours of yesterday morning whose sum no store's integers hold, and a resume point at
    noon: every rollup of the tenant rebuilds yesterday from them, and cannot store it."""

    async def poison() -> None:
        storage = open_storage(storage_url)
        try:
            tenant = await storage.tenants.get_by_name(tenant_name)
            now = datetime.now(UTC)
            yesterday = UTC_DAYS.start_of(Period.DAY, now) - timedelta(days=1)
            for hour in (3, 4):
                activity = [Activity("kiosk", "booth-1", sessions_started=2**62)]
                start = yesterday + timedelta(hours=hour)
                await storage.rollups.replace(tenant.id, Rollup(Period.HOUR, start, activity))
            leases = storage.rollup_leases
            assert await leases.acquire(tenant.id, "poisoner", now, now + timedelta(seconds=1))
            await leases.release(
                tenant.id, "poisoner", yesterday + timedelta(hours=12), tenant.settings.rollup_cut
            )
        finally:
            await storage.close()

    run_async(poison)
