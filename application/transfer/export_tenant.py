"""Export a tenant's whole state as JSON Lines."""

from collections.abc import AsyncIterator
from dataclasses import dataclass

from application.tenants.ports import TenantRepository
from application.transfer.ports import TenantArchive
from application.transfer.tenant_export_format import end, header, to_line
from domain.errors import NotFound


@dataclass(frozen=True)
class ExportTenantQuery:
    tenant_name: str


@dataclass(frozen=True)
class TenantExport:
    tenant_name: str
    lines: AsyncIterator[str]  # without line ends, produced as the store streams them


class ExportTenant:
    """An operator exports a tenant's whole state, to move it to another store: a header line,
    then the tenant, its keys, rates, plans, subscriptions, registrations, funnels, sessions,
    events, ledger entries, alerts, LiveKit keys (with their secrets), snapshots, telemetry,
    rollups and funnels' days, one per line, streamed as the store reads them, then a line that
    counts them. NotFound if there is no
    tenant of that name."""

    def __init__(self, tenants: TenantRepository, archive: TenantArchive) -> None:
        self._tenants = tenants
        self._archive = archive

    async def __call__(self, query: ExportTenantQuery) -> TenantExport:
        tenant = await self._tenants.get_by_name(query.tenant_name)
        if tenant is None:
            raise NotFound(f"no tenant named {query.tenant_name}")
        return TenantExport(tenant.name, self._lines(tenant.name, tenant.id))

    async def _lines(self, name: str, tenant_id: str) -> AsyncIterator[str]:
        yield header(name)
        records = 0
        async for record in self._archive.export(tenant_id):
            yield to_line(record)
            records += 1
        yield end(records)
