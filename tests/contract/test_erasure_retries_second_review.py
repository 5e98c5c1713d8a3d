"""Second review of the erasure retries (dd757cd): EraseSubject._erase restarting when its
pseudonym is no longer the one kept, `resume`, retention finishing abandoned erasures each
apart, and the reaper paging over pending charges (`after`). The first two tests ended wrong
before the fixes that followed: a DELETE queued behind three others answered 409, and
retention never read past its first page of abandoned erasures."""

import asyncio
from typing import Any

import pytest

import application.retention.apply_retention
import application.sessions.reap_stale_sessions
from application.data_rights.ports import Erased
from application.sessions.reap_stale_sessions import ReapStaleSessionsCommand
from domain.erasure import is_pseudonym
from domain.session import Charge, ChargeState
from domain.tenants import Tenant
from tests.contract.builders import a_grant, wired
from tests.contract.erasure_builders import (
    CLOCK,
    COUNSELING,
    LONG_AFTER,
    ana_has_100_credits_for_counseling,
    closed,
    erase,
    erasure_that_fails_midway,
    retention,
)
from tests.contract.races import FailsToMoveOne, Proxy

pytestmark = pytest.mark.anyio


# 1. Concurrent erasures of one subject: the last in line answered Conflict (after 3 restarts),
#    though the subject was wholly erased (each restart drew a pseudonym the next one finished).

OTHERS_FIRST = 5


class OthersFinishFirst(Proxy):
    """The erasure's port: each time the erasure waits for the ledgers, another erasure of the
    subject (a concurrent DELETE, a retry) gets them first and finishes, `times` times."""

    def __init__(self, inner: Any, storage: Any, tenant: Tenant, times: int) -> None:
        super().__init__(inner)
        self._storage, self._tenant, self._times = storage, tenant, times
        self.others: list[Erased] = []

    async def with_ledgers_held(self, *args: Any) -> Any:
        if len(self.others) < self._times:
            self.others.append(await erase(self._storage, self._tenant))
        return await self._inner.with_ledgers_held(*args)


async def test_an_erasure_queued_behind_others_of_its_subject_ends_with_its_counts(
    storage: Any, tenant: Tenant
) -> None:
    await ana_has_100_credits_for_counseling(storage, tenant)
    session = await closed(storage, tenant, "ana")
    others = OthersFinishFirst(storage.erasure, storage, tenant, OTHERS_FIRST)

    try:
        erased = await erase(storage, tenant, erasure=others)
    finally:
        # Whatever the answer, the subject is wholly erased, and nothing links her any more.
        stored = await storage.sessions.get(tenant.id, session.id)
        assert stored.subject_id is not None and is_pseudonym(stored.subject_id)
        assert await storage.erasure.kept(tenant.id, "ana") is None

    assert sum((e.sessions for e in [*others.others, erased]), 0) == 1


# 2. Retention lists only the first SESSIONS abandoned erasures: those that keep failing hide
#    the others, run after run.


async def test_abandoned_erasures_that_keep_failing_do_not_hide_the_ones_after_them(
    storage: Any, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SESSIONS is 1 here (100 in production: a hundred erasures that keep failing)."""
    monkeypatch.setattr(application.retention.apply_retention, "SESSIONS", 1)
    await storage.rates.put(tenant.id, COUNSELING)
    for subject in ("ana", "bo"):  # ana's erasure is listed first (same start, then by id)
        await storage.ledger.grant(a_grant(tenant, 100, f"g-{subject}", subject))
        await closed(storage, tenant, subject)
        await erasure_that_fails_midway(storage, tenant, subject)

    erasure = FailsToMoveOne(storage.erasure, "ana")
    runs = [await retention(storage, 11 + n, erasure=erasure) for n in range(3)]

    assert all(len(run.failures) == 1 for run in runs)  # ana's, reported each time
    assert sum(run.erasures_finished for run in runs) == 1  # bo's
    assert await storage.erasure.unfinished(tenant.id, LONG_AFTER, 10) == ["ana"]


# Attacks that held


async def test_an_erasure_restarted_once_ends_under_one_pseudonym_and_counts_once(
    storage: Any, tenant: Tenant
) -> None:
    """One restart (another erasure finished while this one waited): the sessions stored after
    the other finished are erased by this one, under a new pseudonym of its own with the
    ledger it moved; the counts add up to the whole, and no row is left behind."""
    await ana_has_100_credits_for_counseling(storage, tenant)
    first = await closed(storage, tenant, "ana")

    class ThenAnaComesBack(OthersFinishFirst):
        async def with_ledgers_held(self, *args: Any) -> Any:
            if not self.others:
                self.others.append(await erase(self._storage, self._tenant))
                await self._storage.ledger.grant(a_grant(self._tenant, 50, "g-2", "ana"))
                later.append(await closed(self._storage, self._tenant, "ana"))
            return await self._inner.with_ledgers_held(*args)

    later: list[Any] = []
    others = ThenAnaComesBack(storage.erasure, storage, tenant, 1)
    erased = await erase(storage, tenant, erasure=others)

    assert (others.others[0].sessions, erased.sessions) == (1, 1)
    assert await storage.erasure.kept(tenant.id, "ana") is None
    assert await storage.erasure.unfinished(tenant.id, LONG_AFTER, 10) == []
    deduct = wired(storage, CLOCK).use_cases().deduct_credits()
    await deduct.settle_many(await storage.sessions.pending_charges(tenant.id, 10))
    a = await storage.sessions.get(tenant.id, first.id)
    b = await storage.sessions.get(tenant.id, later[0].id)
    assert a.subject_id != b.subject_id
    assert a.charge == Charge(6, 94, None) and b.charge == Charge(6, 44, None)
    assert await storage.ledger.alerts(tenant.id, limit=10) == []


async def test_the_reaper_pages_over_interleaved_pending_charges_to_the_last(
    storage: Any, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BATCH_SIZE 2; sessions left pending (an unfinished erasure's) sit before, between and at
    a page's end among others: every other one is charged in one run, the run ends."""
    monkeypatch.setattr(application.sessions.reap_stale_sessions, "BATCH_SIZE", 2)
    await storage.rates.put(tenant.id, COUNSELING)
    for subject in ("ana", "bo"):
        await storage.ledger.grant(a_grant(tenant, 100, f"g-{subject}", subject))
    order = ["ana", "bo", "ana", "ana", "bo", "bo", "ana", "bo"]
    ids = [f"{n:08x}-0000-4000-8000-000000000000" for n in range(len(order))]
    made = [await closed(storage, tenant, s, i) for s, i in zip(order, ids, strict=True)]
    await erasure_that_fails_midway(storage, tenant)

    reap = wired(storage, CLOCK).jobs().reap_stale_sessions()
    reaped = await asyncio.wait_for(reap(ReapStaleSessionsCommand()), 60)

    assert reaped.failures == []
    stored = [await storage.sessions.get(tenant.id, s.id) for s in made]
    states = [s.charge_state for s in stored]
    assert states == [ChargeState.PENDING if who == "ana" else ChargeState.CHARGED for who in order]
    charged = [s.charge for s in stored if s.charge_state is ChargeState.CHARGED]
    assert sorted(c.balance_after for c in charged if c is not None) == [76, 82, 88, 94]


async def test_resume_of_a_subject_whose_erasure_finished_begins_nothing(
    storage: Any, tenant: Tenant
) -> None:
    """resume after the kept erasure finished: None, no row, nothing of the subject's new
    session touched."""
    await ana_has_100_credits_for_counseling(storage, tenant)
    await closed(storage, tenant, "ana")
    await erasure_that_fails_midway(storage, tenant)
    assert (await erase(storage, tenant)).sessions == 0  # finishes the move
    back = await closed(storage, tenant, "ana")

    resume = wired(storage, CLOCK).use_cases().erase_subject().resume
    assert await resume(tenant, "ana") is None
    assert await storage.erasure.kept(tenant.id, "ana") is None
    assert (await storage.sessions.get(tenant.id, back.id)).subject_id == "ana"
