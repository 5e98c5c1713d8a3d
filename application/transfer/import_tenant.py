"""Import a tenant's state exported from any store."""

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from application.transfer.ports import Record, TenantArchive
from application.transfer.tenant_export_format import TYPE_OF, from_line
from domain.credits import Alert, LedgerEntry
from domain.errors import InvalidInput
from domain.livekit import LiveKitAccount
from domain.session import Session
from domain.tenants import ApiKey, Tenant

BATCH = 500  # records held at once, whatever the size of the tenant
NAMING_THEIR_TENANT = (ApiKey, Session, LedgerEntry, Alert, LiveKitAccount)


@dataclass(frozen=True)
class ImportTenantCommand:
    lines: Iterable[str]  # an export's lines, read as they are needed


@dataclass
class ImportCounts:
    """Records imported (new) and found already there (present), by record type."""

    new: Counter[str] = field(default_factory=Counter)
    present: Counter[str] = field(default_factory=Counter)


class ImportTenant:
    """An operator imports a tenant's state exported from any store; importing again adds
    nothing. Records are stored exactly as exported (a session keeps its status, usage and
    charge), in batches of at most 500 whatever the size of the tenant, each as a record of the
    tenant before it in the file (whichever tenant it names itself). InvalidInput names the
    first line that is not a record of the export format, or a record before its tenant;
    Conflict if another tenant holds the tenant's name."""

    def __init__(self, archive: TenantArchive) -> None:
        self._archive = archive

    async def __call__(self, command: ImportTenantCommand) -> ImportCounts:
        counts = ImportCounts()
        tenant_id: str | None = None
        batch: list[Record] = []
        for number, line in enumerate(command.lines, start=1):
            if not line.strip():
                continue
            record = from_line(line, number)
            if record is None:
                continue
            if isinstance(record, Tenant):
                await self._flush(tenant_id, batch, counts)
                tenant_id = record.id
            elif tenant_id is None:
                raise InvalidInput(f"line {number}", "a record before its tenant")
            elif isinstance(record, NAMING_THEIR_TENANT) and record.tenant_id != tenant_id:
                # Every record is the imported tenant's, whatever the file says (a tenant
                # imported under another id; a file edited to reach into another tenant).
                record = replace(record, tenant_id=tenant_id)
            batch.append(record)
            if len(batch) >= BATCH:
                await self._flush(tenant_id, batch, counts)
        await self._flush(tenant_id, batch, counts)
        return counts

    async def _flush(
        self, tenant_id: str | None, batch: list[Record], counts: ImportCounts
    ) -> None:
        """Restore the batch a type at a time, so that counts say what was new of each."""
        if tenant_id is None or not batch:
            return
        by_type: dict[str, list[Record]] = {}
        for record in batch:
            by_type.setdefault(TYPE_OF[type(record)], []).append(record)
        for kind, records in by_type.items():
            new = await self._archive.restore(tenant_id, records)
            counts.new[kind] += new
            counts.present[kind] += len(records) - new
        batch.clear()
