"""An operator exports a tenant's whole state, to move it to another store."""

from collections.abc import AsyncIterator

from application.tenants.ports import TenantRepository
from application.transfer.ports import TenantArchive
from application.transfer.tenant_export_format import header, to_line
from domain.errors import NotFound


class ExportTenant:
    def __init__(self, tenants: TenantRepository, archive: TenantArchive) -> None:
        self._tenants = tenants
        self._archive = archive

    async def __call__(self, name: str) -> AsyncIterator[str]:
        """The export's lines (without line ends), produced as the store streams them."""
        tenant = await self._tenants.get_by_name(name)
        if tenant is None:
            raise NotFound(f"no tenant named {name}")
        return self._lines(tenant.name, tenant.id)

    async def _lines(self, name: str, tenant_id: str) -> AsyncIterator[str]:
        yield header(name)
        async for record in self._archive.export(tenant_id):
            yield to_line(record)
