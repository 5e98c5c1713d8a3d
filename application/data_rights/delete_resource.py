"""Remove a resource's log: its sessions, their events and its rollups."""

from dataclasses import dataclass, field

from application.data_rights.ports import Erased, Erasure, SessionPlace, SessionsOf
from application.data_rights.sweeps import BATCH, SESSIONS, delete, erase, in_batches
from application.rollups.rollup_rewinds import RollupRewinds
from application.tenants.as_stored import as_stored
from application.tenants.ports import TenantRepository
from domain.erasure import Forgetting, Pseudonyms
from domain.tenants import Tenant


@dataclass(frozen=True)
class DeleteResourceCommand:
    tenant: Tenant  # as the caller's key resolved it
    resource_id: str


@dataclass(frozen=True)
class DeletedResource:
    sessions: int = 0  # deleted, with their events
    events: int = 0  # deleted
    rollups: int = 0  # (bucket, kind) rows of activity removed
    erased: Erased = field(default_factory=Erased)  # billed sessions erased instead


class DeleteResource:
    """The resource's sessions are deleted with their events, usage and LiveKit tracks, and its
    activity with them from the hourly and daily rollups (the servers' load of those hours
    stays). Sessions a sale or a ledger entry names, or whose charge is pending or charged, are
    kept, because the books must balance: they are erased of personal data instead, as
    subject erasure does (client key replaced by a pseudonym, personal attributes removed,
    events' data and label cleared, errors' context and sales' personal attributes removed),
    except that they keep their subjects: those asked for nothing, their ledgers name these
    sessions, and a later correction of a charge must land on the same account (erasing the
    subject takes it too). The resource's registrations (`POST
    /v1/accounts/{subject_id}/resources`) are kept: they count against monthly quotas already
    used. Idempotent: deleting again, or a resource never seen, answers zero counts.

    Work goes in bounded steps (100 sessions, 1000 events or rows at a time). An event that
    arrives for a session while it is deleted is stored before the session's deletion step (and
    deleted by it) or refused as for an unknown session after it. A sale recorded for a session
    after its events were deleted keeps the session, without those events. The next rollup run
    recomputes the hours whose sources are kept from the resource's first session on, so that a
    run under way meanwhile, which may have read them before, leaves none of the deleted
    sessions in them (the kept, billed ones count there again, as in reports read from the
    sessions)."""

    def __init__(self, erasure: Erasure, tenants: TenantRepository, rewinds: RollupRewinds) -> None:
        self._erasure = erasure
        self._tenants = tenants
        self._rewinds = rewinds

    async def __call__(self, command: DeleteResourceCommand) -> DeletedResource:
        tenant, resource_id = command.tenant, command.resource_id
        e = self._erasure
        # As stored: an attribute named personal just before must go too.
        personal = (await as_stored(self._tenants, tenant)).settings.personal_attributes
        forgetting = Forgetting(Pseudonyms(), personal, keeps_subjects=True)
        sessions = events = 0
        erased = Erased()
        of_resource = SessionsOf(resource_id=resource_id)
        after: SessionPlace | None = None
        first: SessionPlace | None = None
        try:
            while found := await e.sessions(tenant.id, of_resource, SESSIONS, after):
                first = first or found[0]
                after, ids = found[-1], [s.id for s in found]
                billed = await e.billed(tenant.id, ids)
                removed = await delete(e, tenant.id, [i for i in ids if i not in billed])
                sessions, events = sessions + removed.sessions, events + removed.events
                erased += await erase(e, tenant.id, sorted(billed | removed.kept), forgetting)
            rollups = await in_batches(lambda: e.delete_rollups(tenant.id, resource_id, BATCH))
        finally:
            if first is not None:
                # A rollup run under way may have read the resource's hours before its sessions
                # went, and write them back after: the next run recomputes them. Asked when the
                # deletion failed midway too: a retry finds none of the sessions it deleted.
                await self._rewinds.changed_since(tenant.id, first.started_at)
        return DeletedResource(sessions, events, rollups, erased)
