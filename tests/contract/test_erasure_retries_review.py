"""Review of the kept pseudonym of an unfinished erasure (ccb78fc, b4d8b48, 330a6db):
Erasure.pseudonym_for / kept / finished / unfinished, DeductCredits leaving an unfinished
erasure's pseudonym pending, and ApplyRetention finishing abandoned erasures. Each test forces
one interleaving or failure. The first four ended wrong before the fixes that followed the
review: a stale pseudonym's erasure dropping a newer one's row, retention beginning an erasure
nobody asked for, the reaper stopping at a page of sessions left pending, and one abandoned
erasure failing the tenant's whole retention."""

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import adapters.ledger_holds
import adapters.mongodb.erasure
import adapters.sqlalchemy.erasure
import application.sessions.reap_stale_sessions
from application.data_rights.erase_subject import ABANDONED_AFTER
from application.data_rights.ports import Erased
from application.retention.apply_retention import Deleted
from application.sessions.reap_stale_sessions import ReapStaleSessionsCommand
from application.storage import StorageError
from domain.erasure import is_pseudonym
from domain.session import Charge, Session
from domain.snapshots import Snapshot
from domain.tenants import Tenant
from tests.contract.builders import a_grant, at, wired
from tests.contract.erasure_builders import (
    CLOCK,
    COUNSELING,
    LONG_AFTER,
    ana_has_100_credits_for_counseling,
    closed,
    erase,
    erasure_that_fails_midway,
    retention,
    settled_by_the_reaper,
)
from tests.contract.races import (
    FailsToMoveOne,
    HoldsAfterErasing,
    Proxy,
    Race,
    wait_for,
)

pytestmark = pytest.mark.anyio


async def ana_pending_and_her_erasure_failed_midway(storage: Any, tenant: Tenant) -> None:
    """Ana has 100 credits and a session pending its charge of 6; her erasure failed midway
    (the session under the kept pseudonym, her ledger still under her id)."""
    await ana_has_100_credits_for_counseling(storage, tenant)
    await closed(storage, tenant, "ana")
    await erasure_that_fails_midway(storage, tenant)


# 1. `finished` drops the row of whichever erasure of the subject is under way


class WaitsBeforeHolding(Proxy):
    """The erasure's port: the erasure has its pseudonym, and waits for the subject's ledger
    (another erasure of the subject holds it) until `go`."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.reached, self.go = asyncio.Event(), asyncio.Event()

    async def with_ledgers_held(self, *args: Any) -> Any:
        self.reached.set()
        await self.go.wait()
        return await self._inner.with_ledgers_held(*args)


async def test_an_erasure_that_waited_with_a_stale_pseudonym_leaves_a_newer_erasures_row(
    storage: Any, tenant: Tenant
) -> None:
    await ana_pending_and_her_erasure_failed_midway(storage, tenant)  # P1 kept

    # E2 (a retry) gets P1 and waits for the ledger, which E3 (another retry) holds.
    waiting = WaitsBeforeHolding(storage.erasure)
    e2 = asyncio.create_task(erase(storage, tenant, erasure=waiting))
    await asyncio.wait_for(waiting.reached.wait(), 10)
    await erase(storage, tenant)  # E3 finishes under P1: P1's row is gone

    # Ana comes back under her id: 50 credits and a session; her next erasure (P4) fails midway.
    await storage.ledger.grant(a_grant(tenant, 50, "g-2", "ana"))
    later = await closed(storage, tenant, "ana")
    await erasure_that_fails_midway(storage, tenant)

    waiting.go.set()  # E2 gets the ledger at last
    await asyncio.wait_for(e2, 30)
    await erase(storage, tenant)  # anyone's retry of P4's erasure

    (charged,) = await settled_by_the_reaper(storage, tenant, [later])
    assert charged.subject_id is not None and is_pseudonym(charged.subject_id)
    assert charged.charge == Charge(6, 44, None)
    assert await storage.ledger.alerts(tenant.id, limit=10) == []


# 2. Retention finishes an erasure that finished after retention listed it


class FinishedOnceListed(Proxy):
    """The erasure's port (retention's): once the unfinished erasures are first listed,
    `meanwhile` runs (the operator's retry finishes one of them, ...), before retention gets
    to them."""

    def __init__(self, inner: Any, meanwhile: Callable[[], Awaitable[None]]) -> None:
        super().__init__(inner)
        self._meanwhile: Callable[[], Awaitable[None]] | None = meanwhile

    async def unfinished(self, *args: Any) -> list[str]:
        listed: list[str] = await self._inner.unfinished(*args)
        if self._meanwhile is not None:
            meanwhile, self._meanwhile = self._meanwhile, None
            await meanwhile()
        return listed


async def test_retention_begins_no_new_erasure_of_a_subject_whose_erasure_finished_meanwhile(
    storage: Any, tenant: Tenant
) -> None:
    await ana_pending_and_her_erasure_failed_midway(storage, tenant)
    later: list[Session] = []

    async def retried_and_ana_came_back() -> None:
        assert await erase(storage, tenant) == Erased()  # the retry finishes the move
        await storage.ledger.grant(a_grant(tenant, 30, "g-2", "ana"))
        later.append(await closed(storage, tenant, "ana"))

    erasure = FinishedOnceListed(storage.erasure, retried_and_ana_came_back)
    deleted = await retention(storage, 11, erasure=erasure)

    assert (await storage.sessions.get(tenant.id, later[0].id)).subject_id == "ana"
    assert (await storage.ledger.balance(tenant.id, "ana")).balance == 30
    assert deleted.erasures_finished == 0


# 3. The reaper stops at a batch of an unfinished erasure's sessions


async def test_an_unfinished_erasures_sessions_do_not_keep_the_reaper_from_other_charges(
    storage: Any, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BATCH_SIZE is 2 here (500 in production: a subject with that many pending sessions)."""
    monkeypatch.setattr(application.sessions.reap_stale_sessions, "BATCH_SIZE", 2)
    await storage.rates.put(tenant.id, COUNSELING)
    for subject in ("ana", "bo"):
        await storage.ledger.grant(a_grant(tenant, 100, f"g-{subject}", subject))
    for n in (1, 2):
        await closed(storage, tenant, "ana", f"00000000-0000-4000-8000-00000000000{n}")
    bos = await closed(storage, tenant, "bo", "ffffffff-0000-4000-8000-000000000001")
    await erasure_that_fails_midway(storage, tenant)

    reap = wired(storage, CLOCK).jobs().reap_stale_sessions()
    for _ in range(2):
        assert (await reap(ReapStaleSessionsCommand())).failures == []

    stored = await storage.sessions.get(tenant.id, bos.id)
    assert stored.charge == Charge(6, 94, None)


# 4. One abandoned erasure that cannot be finished stops the tenant's retention


async def test_an_abandoned_erasure_that_fails_again_does_not_stop_the_tenants_retention(
    storage: Any, tenant: Tenant
) -> None:
    await storage.rates.put(tenant.id, COUNSELING)
    for subject in ("ana", "bo"):
        await storage.ledger.grant(a_grant(tenant, 100, f"g-{subject}", subject))
        await closed(storage, tenant, subject)
        await erasure_that_fails_midway(storage, tenant, subject)
    old = Snapshot("lk-1", at(-8 * 24 * 60), 30.5, 41.0, 2048.0, 1000, 12, 1)
    await storage.snapshots.add(tenant.id, [old])

    deleted = await retention(storage, 11, erasure=FailsToMoveOne(storage.erasure, "ana"))

    (failure,) = deleted.failures
    assert failure.error.startswith("an abandoned erasure could not be finished")
    assert "ana" not in failure.error  # she asked to be forgotten: not in the logs either
    assert (deleted.erasures_finished, deleted.snapshots) == (1, 1)
    assert await storage.erasure.unfinished(tenant.id, LONG_AFTER, 10) == ["ana"]


# Attacks that held


async def test_asking_for_and_finishing_an_erasures_pseudonym_at_once_keeps_one_or_none(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    """Callers asking for the subject's pseudonym race one that finishes its erasure, round
    after round: each asker gets a pseudonym (none loops or fails on the row vanishing under
    it), and afterwards the subject keeps at most one, one of those given out."""
    for round_ in range(10):

        def asking(n: int, round_: int = round_) -> Any:
            drawn = f"erased:{round_}-{n}"
            return lambda racer: racer.erasure.pseudonym_for(tenant.id, "ana", drawn, at(1))

        async def finishing(racer: Any) -> None:
            if (kept := await racer.erasure.kept(tenant.id, "ana")) is not None:
                await racer.erasure.finished(tenant.id, "ana", kept)

        given = await race(asking(0), finishing, asking(1), finishing, asking(2))
        asked = [given[0], given[2], given[4]]
        assert all(p.startswith(f"erased:{round_}-") for p in asked)
        kept = await storage.erasure.pseudonym_for(tenant.id, "ana", "erased:probe", at(2))
        assert kept == "erased:probe" or kept in asked
        assert await storage.erasure.gave_out(tenant.id, kept)
        await storage.erasure.finished(tenant.id, "ana", kept)
        assert not await storage.erasure.gave_out(tenant.id, kept)


async def test_an_erasure_that_fails_before_any_session_took_its_pseudonym_is_finished_once(
    storage: Any, tenant: Tenant
) -> None:
    """The erasure fails on its first read (nothing took the pseudonym yet). Retention leaves
    it while it may be at work, then finishes it once under the kept pseudonym, with the ledger;
    a session of the subject that ended meanwhile is charged from the credits, 94 left."""

    class FailsToRead(Proxy):
        async def sessions(self, *args: Any) -> Any:
            raise ConnectionError("the connection dropped")

    await ana_has_100_credits_for_counseling(storage, tenant)
    session = await closed(storage, tenant, "ana")
    with pytest.raises((ConnectionError, StorageError)):
        await erase(storage, tenant, erasure=FailsToRead(storage.erasure))
    kept = await storage.erasure.pseudonym_for(tenant.id, "ana", "erased:other", at(0))
    assert kept != "erased:other"

    assert (
        await retention(storage, ABANDONED_AFTER.total_seconds() / 60 - 1)
    ).erasures_finished == 0
    assert (await retention(storage, 11)).erasures_finished == 1
    assert (await retention(storage, 12)).erasures_finished == 0

    (charged,) = await settled_by_the_reaper(storage, tenant, [session])
    assert charged.subject_id == kept
    assert charged.charge == Charge(6, 94, None)
    assert (await storage.ledger.balance(tenant.id, "ana")).balance == 0


async def test_retention_leaves_an_old_erasure_still_at_work_to_itself(
    storage: Any, tenant: Tenant, race: Race, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An erasure begun 11 minutes ago still holds the ledgers when retention comes: the
    finisher gets the same pseudonym, waits its turn and gives up (Conflict), finishing
    nothing; the erasure then ends alone, sessions and ledger under one pseudonym."""
    for module in (adapters.ledger_holds, adapters.sqlalchemy.erasure, adapters.mongodb.erasure):
        monkeypatch.setattr(module, "ERASURE_WAIT_SECONDS", 0.5)
    await ana_has_100_credits_for_counseling(storage, tenant)
    session = await closed(storage, tenant, "ana")
    holding = threading.Event()

    async def erasing(racer: Any) -> Erased:
        return await erase(racer, tenant, erasure=HoldsAfterErasing(racer.erasure, holding, 3))

    async def retaining(racer: Any) -> Deleted:
        await wait_for(holding)
        return await retention(racer, 11)

    erased, deleted = await race(erasing, retaining)

    assert erased.sessions == 1 and deleted.erasures_finished == 0 and deleted.failures == []
    (charged,) = await settled_by_the_reaper(storage, tenant, [session])
    assert charged.charge == Charge(6, 94, None)
    assert await storage.erasure.unfinished(tenant.id, LONG_AFTER, 10) == []
