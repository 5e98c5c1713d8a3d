from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from adapters.ledger_holds import SETTLEMENT_WAIT_SECONDS
from adapters.memory.store import MemoryStore
from adapters.polling import polled
from application.credits.ports import CreditLedger, LedgerHeld, RateRepository
from application.pagination import Position
from domain.charging import Priced, settle, settle_batch, subjects_of
from domain.credits import Alert, Balance, EntryKind, LedgerEntry, Rate
from domain.errors import NotFound
from domain.session import Charge, Session


class MemoryRateRepository(RateRepository):
    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    async def put(self, tenant_id: str, rate: Rate) -> None:
        self._store.rates[(tenant_id, rate.kind)] = rate

    async def all(self, tenant_id: str) -> list[Rate]:
        return [r for (tenant, _), r in sorted(self._store.rates.items()) if tenant == tenant_id]


class MemoryCreditLedger(CreditLedger):
    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    async def grant(self, entry: LedgerEntry) -> tuple[LedgerEntry, bool]:
        for stored in self._store.ledger:
            if (stored.tenant_id, stored.idempotency_key) == (
                entry.tenant_id,
                entry.idempotency_key,
            ):
                return stored, False
        self._store.ledger.append(entry)
        return entry, True

    async def settle(
        self, tenant_id: str, session_id: str, revision: int, credits: int, at: datetime
    ) -> Charge | None:
        session = self._store.sessions.get((tenant_id, session_id))
        if session is None:
            raise NotFound(f"no session {session_id}")
        if not session.awaits_settlement(revision):
            return None
        assert session.subject_id is not None
        if (tenant_id, session.subject_id) in self._store.held_ledgers:
            # An erasure is moving the subject's ledger: wait for it, then read the session again.
            free = self._ledger_free(tenant_id, session.subject_id)
            if not await polled(free, SETTLEMENT_WAIT_SECONDS):
                raise LedgerHeld(session.id)
            return None
        settled = settle(session, credits, self._store.balance_of(tenant_id, session.subject_id))
        self._store.record(session, settled, at)
        return settled.charge

    async def settle_many(
        self, tenant_id: str, priced: Sequence[Priced], at: datetime
    ) -> dict[str, Charge]:
        # Nothing here awaits anything that suspends: one event loop runs the batch whole.
        claimed = [
            p
            for p in priced
            if (stored := self._store.sessions.get((tenant_id, p.session_id))) is not None
            and p.claimable(stored.charge_state, stored.charge_revision, stored.subject_id)
            and (tenant_id, stored.subject_id) not in self._store.held_ledgers
        ]
        balances = dict.fromkeys(subjects_of(claimed), 0)
        for e in self._store.ledger:
            if e.tenant_id == tenant_id and e.subject_id in balances:
                balances[e.subject_id] += e.amount
        charges = {}
        for settled in settle_batch(claimed, balances):
            if (entry := settled.ledger_entry(at)) is not None:
                self._store.ledger.append(entry)
            if (alert := settled.alert_record(at)) is not None:
                self._store.alerts.append(alert)
            self._store.sessions[(tenant_id, settled.session.id)].settle(settled.charge)
            charges[settled.session.id] = settled.charge
        return charges

    def _ledger_free(self, tenant_id: str, subject_id: str) -> Callable[[], Awaitable[bool]]:
        async def free() -> bool:
            return (tenant_id, subject_id) not in self._store.held_ledgers

        return free

    async def settled(self, tenant_id: str, session_id: str) -> Session:
        session = self._store.sessions.get((tenant_id, session_id))
        if session is None:
            raise NotFound(f"no session {session_id}")
        return session.copy()

    async def balance(self, tenant_id: str, subject_id: str) -> Balance:
        entries = [
            e for e in self._store.ledger if (e.tenant_id, e.subject_id) == (tenant_id, subject_id)
        ]
        granted = sum(e.amount for e in entries if e.kind is EntryKind.GRANT)
        return Balance(subject_id, granted, granted - sum(e.amount for e in entries))

    async def entries(
        self, tenant_id: str, subject_id: str, limit: int, after: Position | None = None
    ) -> list[LedgerEntry]:
        found = sorted(
            (
                e
                for e in self._store.ledger
                if (e.tenant_id, e.subject_id) == (tenant_id, subject_id)
                and (after is None or (e.created_at, e.id) > (after.at, after.id))
            ),
            key=lambda e: (e.created_at, e.id),
        )
        return found[:limit]

    async def alerts(
        self, tenant_id: str, limit: int, before: Position | None = None
    ) -> list[Alert]:
        found = [
            a
            for a in self._store.alerts
            if a.tenant_id == tenant_id
            and (before is None or (a.created_at, a.id) < (before.at, before.id))
        ]
        return sorted(found, key=lambda a: (a.created_at, a.id), reverse=True)[:limit]
