"""Review (hostile) of today's erasure sweep (cbb2bf3: it lists again after a page that erased
nothing, and stops with Conflict only on the same page listed twice) and of MongoDB's joining of
a session's deleted-event ranges (7c485da).

The erasure tests run on every store; concurrent callers go through `race` (races.py), each on a
storage object of its own. Pages are made small (SESSIONS patched to 3) so that a handful of
sessions is many pages."""

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

import pytest

import application.data_rights.erase_subject
from adapters.mongodb.deleted_events import JOINED_PAST
from adapters.mongodb.storage import MongoStorage
from application.data_rights.erase_subject import EraseSubjectCommand
from application.data_rights.ports import Erased, SessionPlace, SessionsOf
from domain.erasure import Forgetting
from domain.errors import Conflict
from domain.events import Event
from domain.session import Session
from domain.tenants import Tenant
from tests.contract.builders import NOW, OPEN, a_session, add_tenant, at, stored_session, wired
from tests.contract.races import Proxy, Race
from tests.fakes import FakeClock

pytestmark = pytest.mark.anyio
on_mongodb = pytest.mark.parametrize("storage_url", ["mongodb"], indirect=True)

SUBJECT = "ana"
PAGE = 3


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(application.data_rights.erase_subject, "SESSIONS", PAGE)


async def sessions_of(storage: Any, tenant: Tenant, subject: str, n: int) -> list[str]:
    made = []
    for k in range(n):
        made.append((await stored_session(storage, tenant, k, subject_id=subject)).id)
    return made


async def still_under(storage: Any, tenant: Tenant, subject: str) -> list[str]:
    found = await storage.erasure.sessions(tenant.id, SessionsOf(subject_id=subject), 10_000)
    return [place.id for place in found]


async def erase(storage: Any, tenant: Tenant, subject: str = SUBJECT, **ports: Any) -> Erased:
    use_case = wired(storage, FakeClock(NOW), **ports).use_cases().erase_subject()
    erased: Erased = await asyncio.wait_for(use_case(EraseSubjectCommand(tenant, subject)), 30)
    return erased


class RetentionTakesPartOfEachPage(Proxy):
    """The erasure's port: each page it lists loses its first `lost` sessions (deleted, as
    retention deletes expired sessions) before the erasure erases it."""

    def __init__(self, inner: Any, lost: int) -> None:
        super().__init__(inner)
        self._lost = lost
        self.deleted: list[str] = []

    async def sessions(self, tenant_id: str, of: SessionsOf, limit: int) -> list[SessionPlace]:
        found: list[SessionPlace] = await self._inner.sessions(tenant_id, of, limit)
        gone = [place.id for place in found[: self._lost]]
        if gone:
            await self._inner.delete_sessions(tenant_id, gone)
            self.deleted += gone
        return found


@pytest.mark.parametrize("lost", [1, PAGE], ids=["part of each page", "all of each page"])
async def test_pages_retention_thins_under_the_erasure_are_erased_to_the_end(
    storage: Any, tenant: Tenant, small_pages: None, lost: int
) -> None:
    """11 sessions, pages of 3: retention deletes part (or all) of every page between its
    listing and its erase step. The sweep goes on to the end: every session is deleted or
    erased, none left under the subject, and no Conflict."""
    made = await sessions_of(storage, tenant, SUBJECT, 11)
    port = RetentionTakesPartOfEachPage(storage.erasure, lost)

    erased = await erase(storage, tenant, erasure=port)

    assert await still_under(storage, tenant, SUBJECT) == []
    assert erased.sessions + len(port.deleted) == len(made), (erased, port.deleted)


class ErasesNothing(Proxy):
    """An erasure port whose erase step erases nothing (a store that cannot erase what it
    lists): counts the listings."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.listings = 0

    async def sessions(self, tenant_id: str, of: SessionsOf, limit: int) -> list[SessionPlace]:
        self.listings += 1
        found: list[SessionPlace] = await self._inner.sessions(tenant_id, of, limit)
        return found

    async def erase_sessions(
        self, tenant_id: str, session_ids: Sequence[str], forgetting: Forgetting
    ) -> Erased:
        return Erased()


async def test_a_page_it_cannot_erase_stops_the_sweep_at_its_second_listing(
    storage: Any, tenant: Tenant, small_pages: None
) -> None:
    """The loop is bounded: the same page listed again after erasing nothing is a Conflict at
    the second listing (not a spin), and the pseudonym stays kept for retention to finish."""
    await sessions_of(storage, tenant, SUBJECT, 5)
    port = ErasesNothing(storage.erasure)

    with pytest.raises(Conflict):
        await erase(storage, tenant, erasure=port)

    assert port.listings == 2
    assert await storage.erasure.kept(tenant.id, SUBJECT) is not None
    assert len(await still_under(storage, tenant, SUBJECT)) == 5
    # A later erasure, on a store that erases, finishes it.
    assert (await erase(storage, tenant)).sessions == 5
    assert await still_under(storage, tenant, SUBJECT) == []


async def test_an_erasure_racing_a_client_that_starts_sessions_for_the_subject_ends(
    storage: Any, tenant: Tenant, race: Race, small_pages: None
) -> None:
    """Real concurrent callers: the erasure (pages of 3 over 15 sessions) runs while a client
    starts 15 more sessions for the subject, each started before every stored one (a start
    time the client gives, in the past), so each lands on the erasure's next page. The erasure
    ends (no Conflict, no spin), and every session stored before it is erased."""
    before = await sessions_of(storage, tenant, SUBJECT, 15)

    async def client(s: Any) -> int:
        for k in range(15):
            session = a_session(tenant, -1 - k, subject_id=SUBJECT)
            assert await s.sessions.add(session)
            await asyncio.sleep(0)
        return 15

    async def erasure(s: Any) -> Erased:
        return await erase(s, tenant)

    erased, added = await race(erasure, client)

    left = set(await still_under(storage, tenant, SUBJECT))
    assert not left & set(before), left
    assert erased.sessions + len(left) == len(before) + added


async def test_two_erasures_of_one_subject_over_many_pages_both_end_and_add_up(
    storage: Any, tenant: Tenant, race: Race, small_pages: None
) -> None:
    """Two erasures of one subject at once, 10 sessions in pages of 3: they take turns, both
    end without Conflict, their counts add up to the 10, nothing is left under the subject."""
    await sessions_of(storage, tenant, SUBJECT, 10)

    async def erasure(s: Any) -> Erased:
        return await erase(s, tenant)

    first, second = await race(erasure, erasure)

    assert first.sessions + second.sessions == 10, (first, second)
    assert await still_under(storage, tenant, SUBJECT) == []


# --- MongoDB: a session's deleted-event ranges ------------------------------------------------


@pytest.fixture
async def mongo_tenant(mongodb: MongoStorage) -> Tenant:
    return await add_tenant(mongodb, name=f"t-{uuid.uuid4().hex[:8]}")


async def with_events(mongodb: MongoStorage, tenant: Tenant, numbers: Sequence[int]) -> Session:
    """A session holding the events of these sequence numbers, event n at minute n."""
    session = await stored_session(mongodb, tenant)
    batch = [(i, Event(session.id, n, "tick", at(n))) for i, n in enumerate(numbers)]
    outcome = await mongodb.events.append(tenant.id, batch, NOW, OPEN)
    assert outcome.inserted == len(numbers), outcome
    return session


async def ranges_held(mongodb: MongoStorage, tenant: Tenant, session_id: str) -> list[Any]:
    document = await mongodb.db["sessions"].find_one({"tenant_id": tenant.id, "id": session_id})
    assert document is not None
    held: list[Any] = document.get("deleted_events", [])
    return held


@on_mongodb
async def test_ranges_split_by_real_gaps_are_joined_as_far_as_they_can_be(
    mongodb: MongoStorage, mongo_tenant: Tenant
) -> None:
    """A kiosk that lost 10 batches (every 6th number missing, 10 gaps): retention deletes its
    events one a call. The ranges cannot be joined across the gaps, but the document holds at
    most one range a stretch between gaps, and the gaps still read as gaps."""
    tenant = mongo_tenant
    numbers = [n for n in range(1, 61) if n % 6]
    session = await with_events(mongodb, tenant, numbers)

    held = []
    while await mongodb.retention.delete_events(tenant.id, at(61), 1):
        held.append(len(await ranges_held(mongodb, tenant, session.id)))

    assert len(held) == len(numbers)
    gaps = [(n, n) for n in range(6, 60, 6)]
    # Each call ends joined when it holds more than JOINED_PAST (8): at most a range a stretch.
    assert len(gaps) + 1 > JOINED_PAST and max(held) <= len(gaps) + 1, held
    stored = await mongodb.sessions.get(tenant.id, session.id)
    assert stored is not None
    assert stored.event_gaps == gaps
    assert len(await ranges_held(mongodb, tenant, session.id)) == len(gaps) + 1


@on_mongodb
async def test_thousands_of_ranges_written_before_the_join_are_joined_by_the_next_deletion(
    mongodb: MongoStorage, mongo_tenant: Tenant
) -> None:
    """A session from before 7c485da: 3000 one-number ranges pushed by as many deletions
    (written directly). The next deletion joins them all, with the one it pushes."""
    tenant = mongo_tenant
    session = await with_events(mongodb, tenant, range(1, 3002))
    await mongodb.db["events"].delete_many(
        {"tenant_id": tenant.id, "session_id": session.id, "sequence_no": {"$lte": 3000}}
    )
    await mongodb.db["sessions"].update_one(
        {"tenant_id": tenant.id, "id": session.id},
        {"$set": {"deleted_events": [[n, n] for n in range(1, 3001)]}},
    )

    assert await mongodb.retention.delete_events(tenant.id, NOW, 10) == 1

    assert await ranges_held(mongodb, tenant, session.id) == [[1, 3001]]
    stored = await mongodb.sessions.get(tenant.id, session.id)
    assert stored is not None
    assert (stored.deleted_events, stored.event_gaps) == ([(1, 3001)], [])


@on_mongodb
async def test_an_export_racing_retention_that_joins_its_ranges_completes(
    mongodb: MongoStorage, mongo_tenant: Tenant, race: Race
) -> None:
    """A session with 9 ranges already (every later deletion then joins), 100 events left:
    retention deletes them one a call (push, then join: two changes of deleted_events a call)
    while the tenant is exported. The export compares deleted_events between its reads; it
    must not give up (20 re-reads) and what it writes of the session must have no gap."""
    tenant = mongo_tenant
    session = await with_events(mongodb, tenant, range(1, 120))
    await mongodb.db["events"].delete_many(
        {"tenant_id": tenant.id, "session_id": session.id, "sequence_no": {"$lte": 18}}
    )
    await mongodb.db["sessions"].update_one(
        {"tenant_id": tenant.id, "id": session.id},
        {"$set": {"deleted_events": [[n, n + 1] for n in range(1, 19, 2)]}},
    )

    async def retention(s: Any) -> int:
        total = 0
        while n := await s.retention.delete_events(tenant.id, NOW, 1):
            total += n
        return total

    async def export(s: Any) -> list[Any]:
        return [record async for record in s.archive.export(tenant.id)]

    deleted, records = await race(retention, export)

    assert deleted == 119 - 18
    exported = [r for r in records if isinstance(r, Session) and r.id == session.id]
    assert len(exported) == 1 and exported[0].event_gaps == [], exported
