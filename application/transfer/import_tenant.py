"""Import a tenant's state exported from any store."""

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime

from application.rollups.rollup_rewinds import RollupRewinds
from application.sessions.ports import SessionRepository
from application.telemetry.ports import SaleBook
from application.transfer.ports import ArchivedErasure, Record, TenantArchive
from application.transfer.tenant_export_format import (
    RECORD_TYPES,
    TYPE_OF,
    End,
    Header,
    from_line,
)
from domain.credits import Alert, LedgerEntry
from domain.erasure import is_pseudonym
from domain.errors import Conflict, InvalidInput
from domain.livekit import LiveKitAccount
from domain.sales import Sale, over_refunds
from domain.session import ChargeState, Session, SessionStatus
from domain.snapshots import Snapshot
from domain.tenants import ApiKey, Tenant

BATCH = 500  # records held at once, whatever the size of the tenant
NAMING_THEIR_TENANT = (ApiKey, Session, LedgerEntry, Alert, LiveKitAccount)


@dataclass(frozen=True)
class ImportTenantCommand:
    # An export's lines, read as they are needed, twice (a list, or a file read afresh each time).
    lines: Iterable[str]


@dataclass
class ImportCounts:
    """Records imported (new) and found already there (present), by record type."""

    new: Counter[str] = field(default_factory=Counter)
    present: Counter[str] = field(default_factory=Counter)


class ImportTenant:
    """An operator imports a tenant's state exported from any store; importing again adds
    nothing. The file is read twice: checked whole first, so that a file cut short or with a
    broken line stores nothing, then stored. Records are stored exactly as exported (a session
    keeps its status, usage and charge), in batches of at most 500 whatever the size of the
    tenant, each as a record of the tenant before it in the file (whichever tenant it names
    itself). InvalidInput names the first line that is not a record of the export format, a
    record before its tenant, an end line that counts otherwise, or a file that stops before
    its end line (cut short: version 1 files have none). Conflict if another tenant holds the
    tenant's name, or if the store holds a session of the file as it was before (an older
    import: its ledger entries would come in beside a session they do not match), or if the
    file's refunds of a sale, with those the store took since, would give back more than it,
    all before anything is stored; a session the store holds further along (its reaper timed
    out one the file has open) is kept as it is there. The first pass holds the file's refunds
    (not its other records) for that check. A store failing partway leaves the batches stored
    before, and importing the file again adds the rest. Rollups and funnels' days already in
    the store stay as they are, and the tenant's rollups are rewound to where its data begins:
    the store's next rollup run makes again every bucket whose sources retention has kept (one
    that ran into the import made some from part of it). The erasures under way are stored
    again once the rest is in: the store's retention finishes them over all of it (a run into
    the import finished some over part of it)."""

    def __init__(
        self,
        archive: TenantArchive,
        rewinds: RollupRewinds,
        sessions: SessionRepository,
        sales: SaleBook,
    ) -> None:
        self._archive = archive
        self._rewinds = rewinds
        self._sessions = sessions
        self._sales = sales

    async def __call__(self, command: ImportTenantCommand) -> ImportCounts:
        # Each line checked before anything is stored, and where each tenant's data begins.
        earliest: dict[str, datetime] = {}
        erasures: dict[str, list[Record]] = {}
        tenant_id = ""  # a record before its tenant is refused
        sessions: list[Session] = []
        refunds: dict[str, dict[str, list[Sale]]] = {}  # the file's, by tenant and sale
        for record in _records(command.lines):
            if isinstance(record, Tenant):
                await self._check_not_behind(tenant_id, sessions)
                tenant_id = record.id
            if (at := _rolled_up_from(record)) is not None:
                earliest[tenant_id] = min(at, earliest.get(tenant_id, at))
            if isinstance(record, ArchivedErasure):
                erasures.setdefault(tenant_id, []).append(record)
            if isinstance(record, Sale) and record.refund_of is not None:
                of_tenant = refunds.setdefault(tenant_id, {})
                of_tenant.setdefault(record.refund_of, []).append(record)
            if isinstance(record, Session):
                sessions.append(record)
                if len(sessions) >= BATCH:
                    await self._check_not_behind(tenant_id, sessions)
        await self._check_not_behind(tenant_id, sessions)
        for tenant_id, by_sale in refunds.items():
            await self._check_refunds(tenant_id, by_sale)
        counts = await self._store(command.lines)
        # A rollup run of this store may have run into the import, rolling up sessions whose
        # events were not in yet; and the file's buckets it made are kept as "already there".
        for tenant_id, since in earliest.items():
            await self._rewinds.changed_since(tenant_id, since)
        # So may a retention run, finishing an erasure under way (begun long ago on the other
        # store) before the subject's records were in: kept again, it erases them at its next.
        for tenant_id, under_way in erasures.items():
            await self._archive.restore(tenant_id, under_way)
        return counts

    async def _check_not_behind(self, tenant_id: str, sessions: list[Session]) -> None:
        """Conflict if the store holds one of the sessions as it was before the file's copy."""
        if not sessions:
            return
        present = await self._sessions.existing(tenant_id, [s.id for s in sessions])
        for exported in sessions:
            if exported.id not in present:
                continue
            stored = await self._sessions.get(tenant_id, exported.id)
            if stored is not None and _further_along(exported, stored):
                raise Conflict(
                    f"session {exported.id} is here as it was before this export "
                    f"({stored.status.value}, charge {stored.charge_state.value}; the file has "
                    f"it {exported.status.value}, charge {exported.charge_state.value}): the "
                    "store holds an older import of the tenant; import into one that holds none"
                )
        sessions.clear()

    async def _check_refunds(self, tenant_id: str, by_sale: dict[str, list[Sale]]) -> None:
        """Conflict if the file's refunds of a sale the store holds, with the refunds of it the
        store took (since an earlier import that failed partway), would give back more than
        it: the cap RecordSales keeps (domain.sales.over_refunds)."""
        sale_ids = sorted(by_sale)
        for start in range(0, len(sale_ids), BATCH):
            refunded = await self._sales.get_many(tenant_id, sale_ids[start : start + BATCH])
            if not refunded:
                continue  # none here yet: the file's own refunds kept the cap where it was made
            stored = await self._sales.refunds_of(tenant_id, sorted(refunded))
            for sale in refunded.values():
                here = {r.id: r.amounts.net for r in stored if r.refund_of == sale.id}
                coming = [r for r in by_sale[sale.id] if r.id not in here]
                over = [why for why in over_refunds(sale, here.values(), coming) if why]
                if over:
                    raise Conflict(
                        f"the refunds of sale {sale.id} in this file and those the store took "
                        f"since would give back more than it ({over[0].message}): the store "
                        "holds an older import of the tenant that served meanwhile"
                    )

    async def _store(self, lines: Iterable[str]) -> ImportCounts:
        counts = ImportCounts()
        tenant_id: str | None = None
        batch: list[Record] = []
        for record in _records(lines):
            if isinstance(record, Tenant):
                await self._flush(tenant_id, batch, counts)
                tenant_id = record.id
            batch.append(record)
            if len(batch) >= BATCH:
                await self._flush(tenant_id, batch, counts)
        await self._flush(tenant_id, batch, counts)
        return counts

    async def _flush(
        self, tenant_id: str | None, batch: list[Record], counts: ImportCounts
    ) -> None:
        """Restore the batch a type at a time, so that counts say what was new of each, in the
        format's order: an export may give a few sessions, their events and tracks, then the
        next ones (MongoDB), and a batch holding the end of one group and the start of the
        next stores those sessions before their events."""
        if tenant_id is None or not batch:
            return
        by_type: dict[str, list[Record]] = {kind: [] for kind in RECORD_TYPES}
        for record in batch:
            by_type[TYPE_OF[type(record)]].append(record)
        for kind, records in by_type.items():
            if not records:
                continue
            new = await self._archive.restore(tenant_id, records)
            counts.new[kind] += new
            counts.present[kind] += len(records) - new
        batch.clear()


def _further_along(exported: Session, stored: Session) -> bool:
    """Whether the file's copy of a session has come further than the stored one: ended where
    that is open, or by its client where the stored one has only the reaper's guess; more
    events numbered; charged again, or charged where that is not yet; erased where that is not.
    (Times are not compared: MongoDB keeps them to the millisecond.)"""
    return (
        (exported.ended_at is not None and stored.ended_at is None)
        or (
            stored.status is SessionStatus.TIMED_OUT
            and exported.ended_at is not None
            and exported.status is not SessionStatus.TIMED_OUT
        )
        or (is_pseudonym(exported.subject_id) and not is_pseudonym(stored.subject_id))
        or exported.max_sequence_no > stored.max_sequence_no
        or exported.charge_revision > stored.charge_revision
        or (
            exported.charge_revision == stored.charge_revision
            and exported.charge_state is ChargeState.CHARGED
            and stored.charge_state is not ChargeState.CHARGED
        )
    )


def _rolled_up_from(record: Record) -> datetime | None:
    """The first instant whose rollups a record counts in (None: a record rollups do not read)."""
    match record:
        case Tenant():
            return record.created_at
        case Session():
            return record.started_at
        case Snapshot():
            return record.at
    return None


def _records(lines: Iterable[str]) -> Iterator[Record]:
    """The records of an export's lines, each as the imported tenant's; InvalidInput names the
    first line that breaks the format (ImportTenant)."""
    tenant_id: str | None = None
    version, records, ended, number = None, 0, False, 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if ended:
            raise InvalidInput(f"line {number}", "a line after the export's end")
        read = from_line(line, number)
        if isinstance(read, Header):
            version = read.version
            continue
        if isinstance(read, End):
            if read.records != records:
                raise InvalidInput(
                    f"line {number}", f"the export counts {read.records} records, not {records}"
                )
            ended = True
            continue
        record, records = read, records + 1
        if isinstance(record, Tenant):
            tenant_id = record.id
        elif tenant_id is None:
            raise InvalidInput(f"line {number}", "a record before its tenant")
        elif isinstance(record, NAMING_THEIR_TENANT) and record.tenant_id != tenant_id:
            # Every record is the imported tenant's, whatever the file says (a tenant imported
            # under another id; a file edited to reach into another tenant).
            record = replace(record, tenant_id=tenant_id)
        yield record
    if version != 1 and not ended:  # the end line came with version 2
        raise InvalidInput(f"line {number + 1}", "the export ends before its end line: cut short")
