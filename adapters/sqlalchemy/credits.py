from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.sqlalchemy.asyncpg_settlements import AsyncpgSettlement, AsyncpgSettlementWriter
from adapters.sqlalchemy.driver_steps import Writers, in_transaction, on_connection
from adapters.sqlalchemy.engine import insert, single_statement
from adapters.sqlalchemy.errors import lock_timed_out, raises_storage_errors
from adapters.sqlalchemy.keyset import past
from adapters.sqlalchemy.ledger_rows import (
    alert_from_row,
    entry_from_row,
    entry_to_row,
    settlement_records,
)
from adapters.sqlalchemy.session_rows import load
from adapters.sqlalchemy.settlement_batches import SettlementWriter
from adapters.sqlalchemy.settlement_claims import Claim, SettlementStatements
from adapters.sqlalchemy.sqlite_settlements import SqliteSettlement, SqliteSettlementWriter
from adapters.sqlalchemy.tables import alerts, ledger_balances, ledger_entries, rates, sessions
from application.credits.ports import CreditLedger, LedgerHeld, RateRepository
from application.pagination import Position
from domain.charging import Priced, settle, settle_batch, subjects_of
from domain.credits import Alert, Balance, LedgerEntry, MeterRate, Rate, Rounding
from domain.errors import NotFound
from domain.session import Charge, Session


class Held:
    """What a settlement on SQLite finds when an erasure holds its subject's ledger (it does not
    wait: every look takes SQLite's one write lock, which the erasure's steps wait for)."""


class Lost:
    """What a settlement finds when its claim lost to another settlement of the session or its
    subject, made between its read and its claim."""


HELD, LOST = Held(), Lost()
# One session's settlement on each engine (adapters.sqlalchemy.settlement_claims).
SETTLEMENTS: Writers[SettlementStatements] = Writers(AsyncpgSettlement, SqliteSettlement)
# PostgreSQL's, taking the subject's turn before it reads the balance.
TURN_TAKING: Writers[SettlementStatements] = Writers(
    lambda driver: AsyncpgSettlement(driver, taking_turns=True), SqliteSettlement
)


@raises_storage_errors
class SqlRateRepository(RateRepository):
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._single = single_statement(engine)

    async def put(self, tenant_id: str, rate: Rate) -> None:
        stmt = insert(self._engine, rates).values(rate_to_row(tenant_id, rate))
        stmt = stmt.on_conflict_do_update(
            index_elements=["tenant_id", "kind"],
            set_={c: stmt.excluded[c] for c in ("credits_per_minute", "rounding", "meter_rates")},
        )
        async with self._single.begin() as conn:
            await conn.execute(stmt)

    async def all(self, tenant_id: str) -> list[Rate]:
        query = select(rates).where(rates.c.tenant_id == tenant_id).order_by(rates.c.kind)
        async with self._single.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [rate_from_row(r) for r in rows]


@raises_storage_errors
class SqlCreditLedger(CreditLedger):
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._single = single_statement(engine)

    async def grant(self, entry: LedgerEntry) -> tuple[LedgerEntry, bool]:
        stmt = (
            insert(self._engine, ledger_entries)
            .values(entry_to_row(entry))
            .on_conflict_do_nothing()
        )
        async with self._single.begin() as conn:
            inserted = (await conn.execute(stmt)).rowcount == 1
        if inserted:
            return entry, True
        query = select(ledger_entries).where(
            ledger_entries.c.tenant_id == entry.tenant_id,
            ledger_entries.c.idempotency_key == entry.idempotency_key,
        )
        async with self._single.connect() as conn:
            return entry_from_row((await conn.execute(query)).one()), False

    async def settle(
        self, tenant_id: str, session_id: str, revision: int, credits: int, at: datetime
    ) -> Charge | None:
        """Read the session with its subject's balance, let domain.charging.settle decide, then
        claim the revision read and write what the settlement records in one atomic step. A
        session whose subject's ledger an erasure holds raises LedgerHeld: on PostgreSQL once
        the claim waited 5 s for the ledger's lock (migration 0027's lock_timeout); on SQLite
        at once, since every look takes SQLite's one write lock, which the erasure's steps and
        every other writer are waiting for (polled, it kept heartbeats out for seconds)."""
        try:
            outcome = await self._settle(tenant_id, session_id, revision, credits, at)
        except Exception as error:  # the driver's (asyncpg is an optional dependency)
            if lock_timed_out(error):  # an erasure holds the ledger (PostgreSQL)
                raise LedgerHeld(session_id) from error
            raise
        if isinstance(outcome, Held):
            raise LedgerHeld(session_id)
        return None if isinstance(outcome, Lost) else outcome

    async def _settle(
        self, tenant_id: str, session_id: str, revision: int, credits: int, at: datetime
    ) -> Charge | Held | Lost | None:
        async def step(statements: SettlementStatements) -> Charge | Held | Lost | None:
            return await _settled(statements, tenant_id, session_id, revision, credits, at)

        # On PostgreSQL the read and the claim are two autocommitted statements (no BEGIN and
        # COMMIT on the hot path of every charged exit); SQLite runs them in one transaction,
        # which takes its write lock.
        if self._engine.dialect.name != "postgresql":
            return await in_transaction(self._engine, SETTLEMENTS, step)
        outcome = await on_connection(self._engine, SETTLEMENTS, step, writes=True)
        if isinstance(outcome, Lost):
            # Again, in a transaction holding the subject's turn from the read on: many exits of
            # one subject at once would each lose to the others again, and those that lost
            # every attempt of DeductCredits' would be left to the reaper.
            outcome = await in_transaction(self._engine, TURN_TAKING, step)
        return outcome

    async def settle_many(
        self, tenant_id: str, priced: Sequence[Priced], at: datetime
    ) -> dict[str, Charge]:
        """One transaction (adapters.sqlalchemy.settlement_batches), sent to the driver directly
        (driver_steps): on PostgreSQL its statements cost the same whatever the batch's size."""
        if not priced:
            return {}
        writers: Writers[SettlementWriter] = Writers(
            lambda driver: AsyncpgSettlementWriter(driver, tenant_id),
            lambda connection: SqliteSettlementWriter(connection, tenant_id),
        )
        # On `engine`'s connections, not the driver engine's: before migration 0030 the batch
        # summed each subject's ledger, and a generic plan made while one was empty read it whole
        # for each subject (625 ms a batch of 500 on the reaper's benchmark). Every statement
        # now finds its rows by key; the batch stays where the reaper's figures were taken.
        return await in_transaction(
            self._engine, writers, lambda writer: _settle_batch(writer, priced, at)
        )

    async def settled(self, tenant_id: str, session_id: str) -> Session:
        query = select(sessions).where(
            sessions.c.tenant_id == tenant_id, sessions.c.id == session_id
        )
        async with self._single.connect() as conn:
            found = await load(conn, (await conn.execute(query)).all())
        if not found:
            raise NotFound(f"no session {session_id}")
        return found[0]

    async def balance(self, tenant_id: str, subject_id: str) -> Balance:
        async with self._single.connect() as conn:
            return await _sums(conn, tenant_id, subject_id)

    async def entries(
        self, tenant_id: str, subject_id: str, limit: int, after: Position | None = None
    ) -> list[LedgerEntry]:
        e = ledger_entries.c
        conditions = [e.tenant_id == tenant_id, e.subject_id == subject_id]
        if after is not None:
            conditions.append(past(e.created_at, e.id, (after.at, after.id)))
        query = (
            select(ledger_entries)
            .where(*conditions)
            .order_by(ledger_entries.c.created_at, ledger_entries.c.id)
            .limit(limit)
        )
        async with self._single.connect() as conn:
            return [entry_from_row(r) for r in await conn.execute(query)]

    async def alerts(
        self, tenant_id: str, limit: int, before: Position | None = None
    ) -> list[Alert]:
        a = alerts.c
        conditions = [a.tenant_id == tenant_id]
        if before is not None:
            conditions.append(past(a.created_at, a.id, (before.at, before.id), descending=True))
        query = (
            select(alerts)
            .where(*conditions)
            .order_by(a.created_at.desc(), a.id.desc())
            .limit(limit)
        )
        async with self._single.connect() as conn:
            return [alert_from_row(r) for r in await conn.execute(query)]


async def _settle_batch(
    writer: SettlementWriter, priced: Sequence[Priced], at: datetime
) -> dict[str, Charge]:
    """Lock the subjects' ledgers that are free, lock and read their sessions' charge states,
    keep those still claimable as priced, sum their subjects' balances, let domain.charging.settle_batch decide,
    write what it decided."""
    taken = await writer.lock_subjects(sorted(subjects_of(priced)))
    priced = [p for p in priced if p.session.subject_id in taken]
    if not priced:
        return {}
    states = await writer.charge_states(sorted({p.session_id for p in priced}))
    claimed = [p for p in priced if p.session_id in states and p.claimable(*states[p.session_id])]
    subjects = sorted(subjects_of(claimed))
    if not subjects:
        return {}
    decided = settle_batch(claimed, await writer.balances(subjects))
    charges = {d.session.id: d.charge for d in decided}
    await writer.write(
        charges,
        [entry_to_row(e) for d in decided if (e := d.ledger_entry(at)) is not None],
        [asdict(a) for d in decided if (a := d.alert_record(at)) is not None],
    )
    return charges


async def _settled(
    statements: SettlementStatements,
    tenant_id: str,
    session_id: str,
    revision: int,
    credits: int,
    at: datetime,
) -> Charge | Held | Lost | None:
    """Read the session with its subject's balance, let domain.charging.settle decide, claim
    the revision read with what the decision records (adapters.sqlalchemy.settlement_claims).
    None when the session read does not await this settlement."""
    found = await statements.read(tenant_id, session_id)
    if found is None:
        raise NotFound(f"no session {session_id}")
    session = found.session
    if not session.awaits_settlement(revision):
        return None
    if found.held:
        return HELD
    settled = settle(session, credits, found.balance)
    records = settlement_records(settled, session, at)
    session.settle(settled.charge)
    claim = Claim(session, revision, found.balance, records)
    return settled.charge if await statements.claim(claim) else LOST


async def _sums(conn: AsyncConnection, tenant_id: str, subject_id: str) -> Balance:
    """Granted and consumed (charges net of their adjustments): the sums of the subject's
    ledger, as the database keeps them."""
    query = select(ledger_balances.c.granted, ledger_balances.c.consumed).where(
        ledger_balances.c.tenant_id == tenant_id, ledger_balances.c.subject_id == subject_id
    )
    granted, consumed = (await conn.execute(query)).one_or_none() or (0, 0)
    return Balance(subject_id, int(granted), int(consumed))


def rate_to_row(tenant_id: str, rate: Rate) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "kind": rate.kind,
        "credits_per_minute": rate.credits_per_minute,
        "rounding": rate.rounding.value,
        "meter_rates": {
            m: {"per": str(r.per), "credits": r.credits} for m, r in rate.meter_rates.items()
        },
    }


def rate_from_row(row: Any) -> Rate:
    return Rate(
        row.kind,
        row.credits_per_minute,
        Rounding(row.rounding),
        {m: MeterRate(Decimal(v["per"]), v["credits"]) for m, v in row.meter_rates.items()},
    )
