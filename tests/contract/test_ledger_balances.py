"""The SQL stores keep each subject's sums in `ledger_balances` by triggers on its ledger
(migration 0030): whatever writes the entries, concurrently or not, the kept row is the sums of
the entries as they are, and a subject without entries has no row (an erased subject's id is
not kept there)."""

from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text

from adapters.sqlalchemy.storage import MIGRATIONS
from application.data_rights.erase_subject import EraseSubjectCommand
from domain.credits import LedgerEntry
from domain.session import Exit
from domain.tenants import Tenant
from tests.contract.builders import NOW, SHUT, T0, at, stored_session, wired
from tests.contract.ledger_sums import kept_and_summed
from tests.contract.races import Race

# The SQL stores only (the others keep no balances to check).
pytestmark = [
    pytest.mark.anyio,
    pytest.mark.parametrize("storage_url", ["sqlite", "postgresql"], indirect=True),
]


async def granted(storage: Any, tenant: Tenant, subject: str, amount: int, key: str) -> None:
    entry = LedgerEntry.grant(key, tenant.id, subject, amount, "welcome", key, T0)
    await storage.ledger.grant(entry)


async def charged(storage: Any, tenant: Tenant, subject: str, credits: int) -> str:
    session = await stored_session(storage, tenant, kind="practice", subject_id=subject)
    rated = frozenset({"practice"})
    await storage.sessions.close(tenant.id, session.id, Exit(at(5)), rated, NOW, SHUT)
    assert await storage.ledger.settle(tenant.id, session.id, 0, credits, at(5)) is not None
    return str(session.id)


async def test_the_kept_sums_follow_grants_charges_and_racing_settlements(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    await granted(storage, tenant, "ana", 100, "welcome-ana")
    await granted(storage, tenant, "ana", 100, "welcome-ana")  # the same key: recorded once
    await granted(storage, tenant, "bo", 40, "welcome-bo")
    await charged(storage, tenant, "ana", 30)
    sessions = [
        await stored_session(storage, tenant, kind="practice", subject_id=s)
        for s in ("ana", "ana", "bo", "bo", "cy")
    ]
    rated = frozenset({"practice"})
    for session in sessions:
        await storage.sessions.close(tenant.id, session.id, Exit(at(5)), rated, NOW, SHUT)

    def settler(session_id: str, credits: int) -> Any:
        async def settle(s: Any) -> None:
            # A claim holds only while the subject's balance is the one read (a grant may move
            # it): read again, as DeductCredits does.
            while await s.ledger.settle(tenant.id, session_id, 0, credits, at(5)) is None:
                pass

        return settle

    grants = [lambda s, n=n: granted(s, tenant, "ana", 5, f"top-up-{n}") for n in range(4)]
    await race(*[settler(s.id, 7) for s in sessions], *grants)

    kept, summed = await kept_and_summed(storage, tenant.id)
    assert kept == summed
    assert kept == [("ana", 120, 44, 8), ("bo", 40, 14, 3), ("cy", 0, 7, 1)]
    assert (await storage.ledger.balance(tenant.id, "ana")).balance == 76


async def test_an_erased_subject_leaves_its_sums_to_its_pseudonym_and_no_row_of_its_own(
    storage: Any, tenant: Tenant
) -> None:
    await granted(storage, tenant, "ana", 100, "welcome-ana")
    session_id = await charged(storage, tenant, "ana", 30)
    await granted(storage, tenant, "bo", 10, "welcome-bo")

    await wired(storage).use_cases().erase_subject()(EraseSubjectCommand(tenant, "ana"))

    pseudonym = (await storage.sessions.get(tenant.id, session_id)).subject_id
    kept, summed = await kept_and_summed(storage, tenant.id)
    assert kept == summed
    assert kept == sorted([("bo", 10, 0, 1), (pseudonym, 100, 30, 2)])
    assert (await storage.ledger.balance(tenant.id, pseudonym)).balance == 70
    assert (await storage.ledger.balance(tenant.id, "ana")).balance == 0


async def test_entries_deleted_or_changed_by_hand_move_the_sums_with_them(
    storage: Any, tenant: Tenant
) -> None:
    """Nothing in the service deletes or rewrites an entry's amount; an operator may."""
    await granted(storage, tenant, "ana", 100, "welcome-ana")
    await granted(storage, tenant, "ana", 50, "bonus-ana")
    await charged(storage, tenant, "ana", 30)
    async with storage.engine.begin() as conn:
        key = {"t": tenant.id}
        await conn.execute(
            text("UPDATE ledger_entries SET amount = 60 WHERE tenant_id = :t AND amount = 50"), key
        )
        await conn.execute(
            text("DELETE FROM ledger_entries WHERE tenant_id = :t AND amount = 100"), key
        )

    kept, summed = await kept_and_summed(storage, tenant.id)
    assert kept == summed == [("ana", 60, 30, 2)]
    async with storage.engine.begin() as conn:
        await conn.execute(text("DELETE FROM ledger_entries WHERE tenant_id = :t"), key)
    assert await kept_and_summed(storage, tenant.id) == ([], [])


BULK = text(
    "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 3000)"
    " INSERT INTO ledger_entries (id, tenant_id, subject_id, amount, kind, created_at)"
    " SELECT 'bulk-' || n, :t, 's' || (n % 3), n,"
    " CASE WHEN n % 2 = 0 THEN 'grant' ELSE 'charge' END, '2026-12-01 00:00:00+00:00' FROM g"
)


async def test_statements_writing_thousands_of_entries_keep_the_sums_exact(
    storage: Any, tenant: Tenant
) -> None:
    """What an operator's bulk SQL, an import or an erasure's moves do: many entries of a few
    subjects in one statement (PostgreSQL sums them once a statement)."""
    await granted(storage, tenant, "s1", 7, "welcome-s1")
    key = {"t": tenant.id}
    async with storage.engine.begin() as conn:
        await conn.execute(BULK, key)
        await conn.execute(
            text(
                "UPDATE ledger_entries SET subject_id = 'moved' WHERE tenant_id = :t"
                " AND subject_id = 's1'"
            ),
            key,
        )
        await conn.execute(
            text("DELETE FROM ledger_entries WHERE tenant_id = :t AND subject_id = 's2'"), key
        )

    kept, summed = await kept_and_summed(storage, tenant.id)
    assert kept == summed
    assert [subject for subject, *_ in kept] == ["moved", "s0"]
    assert kept[0][3] == 1001  # s1's 1,000 and its grant


async def test_upgrading_a_database_with_ledgers_sums_them_once(
    storage: Any, tenant: Tenant
) -> None:
    await granted(storage, tenant, "ana", 100, "welcome-ana")
    await charged(storage, tenant, "ana", 30)
    await granted(storage, tenant, "bo", 10, "welcome-bo")
    async with storage.engine.begin() as conn:
        await conn.run_sync(lambda c: command.downgrade(_config(c), "0029"))
    try:
        await granted(storage, tenant, "bo", 5, "bonus-bo")  # before the upgrade: no trigger
    finally:  # the database goes to the next test (tests/conftest.py PostgresDatabases)
        await storage.migrate()

    kept, summed = await kept_and_summed(storage, tenant.id)
    assert kept == summed == [("ana", 100, 30, 2), ("bo", 15, 0, 2)]
    await charged(storage, tenant, "bo", 4)  # and the trigger is back
    assert (await storage.ledger.balance(tenant.id, "bo")).balance == 11


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config
