"""What the erasure tests build on: a rated kind, sessions of a subject pending their charge,
an erasure run through the use case (its ports replaceable), and the reaper's settlement."""

from collections.abc import Awaitable
from datetime import timedelta
from typing import Any

import pytest

from application.data_rights.erase_subject import EraseSubjectCommand
from application.data_rights.ports import Erased
from application.retention.apply_retention import ApplyRetentionCommand, Deleted
from application.storage import StorageError
from domain.credits import Rate
from domain.session import ChargeState, Exit, Session
from domain.tenants import Tenant
from tests.contract.builders import NOW, SHUT, a_grant, a_session, at, wired
from tests.contract.races import FailsToMove
from tests.fakes import FakeClock

COUNSELING = Rate("counseling", 2)  # 2 credits a minute: an exit at minute 3 costs 6
RATED = frozenset({"counseling"})
CLOCK = FakeClock(at(60))
LONG_AFTER = at(60 * 24 * 365)


async def ana_has_100_credits_for_counseling(storage: Any, tenant: Tenant) -> None:
    await storage.rates.put(tenant.id, COUNSELING)
    await storage.ledger.grant(a_grant(tenant, 100, "g-1", "ana"))


async def closed(
    storage: Any, tenant: Tenant, subject: str = "ana", session_id: str | None = None
) -> Session:
    """A session of `subject` (with id `session_id` if given) closed at minute 3, pending its
    charge of 6 credits."""
    session = a_session(tenant, kind="counseling", subject_id=subject)
    if session_id is not None:
        session.id = session_id
    assert await storage.sessions.add(session)
    await storage.sessions.close(tenant.id, session.id, Exit(at(3)), RATED, NOW, SHUT)
    pending: Session = await storage.sessions.get(tenant.id, session.id)
    assert pending.charge_state is ChargeState.PENDING
    return pending


async def erase(storage: Any, tenant: Tenant, subject: str = "ana", **ports: Any) -> Erased:
    use_cases = wired(storage, CLOCK, **ports).use_cases()
    erased: Erased = await use_cases.erase_subject()(EraseSubjectCommand(tenant, subject))
    return erased


async def settled_by_the_reaper(
    storage: Any, tenant: Tenant, sessions: list[Session]
) -> list[Session]:
    """The sessions as stored once the reaper settled what was left pending (on SQLite a
    settlement that finds its ledger held leaves it to the reaper at once)."""
    deduct = wired(storage, CLOCK).use_cases().deduct_credits()
    await deduct.settle_many(await storage.sessions.pending_charges(tenant.id, 10))
    return [await storage.sessions.get(tenant.id, s.id) for s in sessions]


async def erasure_that_fails_midway(storage: Any, tenant: Tenant, subject: str = "ana") -> None:
    """The subject's sessions take the pseudonym, then the move of its ledger fails."""
    with pytest.raises((ConnectionError, StorageError)):
        await erase(storage, tenant, subject, erasure=FailsToMove(storage.erasure))


def retention(storage: Any, minutes_later: float, **ports: Any) -> Awaitable[Deleted]:
    """A retention run `minutes_later` than CLOCK, its ports replaceable."""
    clock = FakeClock(CLOCK.now() + timedelta(minutes=minutes_later))
    return wired(storage, clock, **ports).jobs().apply_retention()(ApplyRetentionCommand())
