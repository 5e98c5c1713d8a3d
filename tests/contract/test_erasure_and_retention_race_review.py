"""Review: erasures of subjects racing the retention job, on every store.

Retention deletes old snapshots, old events and expired unbilled sessions, and finishes
erasures a failure left unfinished (ABANDONED_AFTER old); erasures pseudonymise a subject's
sessions, events, ledger, registrations and refused starts. Both write the same sessions,
events and ledgers, so these tests run them at once, each racer on its own storage object
(its own engine, pool or client: tests/contract/races.py), and check afterwards that neither
failed (a PostgreSQL deadlock or a lock wait surfaces as an error, in retention's case as a
reported failure), that nothing of an erased subject is left under its real id, that every
ledger still balances, that each old event was deleted and counted once, that sessions kept
remember their deleted events (no gaps), and that the subjects nobody erased are untouched.

The first test is a free race, repeated over rounds of fresh data; the second forces one
interleaving (tests/contract/races.py `Pause`/`after`) that the free race reaches only in a
narrow window (a defect the review found, fixed)."""

import asyncio
import dataclasses
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

import application.data_rights.erase_subject
from adapters.sqlalchemy.tables import metadata
from application.data_rights.erase_subject import ABANDONED_AFTER, EraseSubjectCommand
from application.data_rights.ports import Erased
from application.retention.apply_retention import ApplyRetentionCommand, Deleted
from domain.credits import Balance
from domain.erasure import is_pseudonym
from domain.errors import Conflict
from domain.events import Event
from domain.refusals import Refusal, RefusedStart
from domain.session import ChargeState, Exit, Session, SessionRequest
from domain.snapshots import Snapshot
from domain.tenants import Tenant
from tests.contract.builders import (
    NOW,
    OPEN,
    SHUT,
    T0,
    a_grant,
    add_tenant,
    stored_session,
    wired,
)
from tests.contract.erasure_builders import (
    COUNSELING,
    LONG_AFTER,
    RATED,
    closed,
    erasure_that_fails_midway,
    settled_by_the_reaper,
)
from tests.contract.ledger_sums import kept_and_summed
from tests.contract.races import Pause, Proxy, Race, after
from tests.contract.test_grouped_statements import held
from tests.contract.test_sqlalchemy_specifics import on_postgresql
from tests.fakes import FakeClock

pytestmark = pytest.mark.anyio

# When the racing erasures and retention run: 200 days after T0, so that what started at T0 is
# past every retention (events 90 days, snapshots 7, sessions 30) and the erasures that
# erasure_that_fails_midway left at T0 + 1 h are long abandoned.
RUN_AT = T0 + timedelta(days=200)
RECENT = RUN_AT - timedelta(days=1)  # within every retention
# Rounds of fresh data: more on PostgreSQL, the only store whose row locks can deadlock
# (reversing the order erase_sessions locks sessions in deadlocks within 6 rounds there);
# MongoDB's rounds are the slowest (one).
ROUNDS = {"postgresql": 6, "mongodb": 1}
OTHER_ROUNDS = 2
PAGE = 5  # sessions an erasure lists at once, made few where a test fills a page
OLD_SESSIONS = 6  # a subject's ended, unbilled old sessions (session retention deletes them)
OLD_EVENTS = 4  # events of each of them
BILLED_EVENTS = 3  # events of the subject's old charged session (kept; its events go)
RECENT_EVENTS = 4  # events of its running recent session (kept with them)
OLD_EVENTS_OF_A_SUBJECT = OLD_SESSIONS * OLD_EVENTS + BILLED_EVENTS


@pytest.fixture
async def tenant(storage: Any) -> Tenant:
    return await add_tenant(storage, session_retention_days=30, personal_attributes=("email",))


@dataclass
class Subject:
    """What a subject has: old sessions retention deletes, an old charged one it keeps (its
    events go), a running recent one, 100 credits granted, 6 charged, a registration and a
    refused start; `pending`: a session closed and pending its charge of 6."""

    id: str
    old: list[str]
    billed: str
    recent: str
    pending: str | None = None


def a_session(tenant: Tenant, subject: str, started_at: datetime, kind: str = "webinar") -> Session:
    attributes: dict[str, Any] = {"email": f"{subject}@example.com", "ip": "203.0.113.7"}
    request = SessionRequest(
        kind=kind,
        resource_id="webinar-1",
        subject_id=subject,
        client_key=f"browser-{subject}",
        started_at=started_at,
        attributes=attributes | {"plan": "pro"},
    )
    return Session.start(tenant.id, str(uuid.uuid4()), request, now=RUN_AT)


async def with_events(storage: Any, tenant: Tenant, session: Session, n: int) -> None:
    batch = [
        (
            i,
            Event(
                session.id,
                i + 1,
                "answer",
                session.started_at + timedelta(minutes=i + 1),
                label="q",
                data={"text": "my answer"},
            ),
        )
        for i in range(n)
    ]
    outcome = await storage.events.append(tenant.id, batch, NOW, OPEN)
    assert outcome.inserted == n, outcome


async def a_subject(storage: Any, tenant: Tenant, subject: str) -> Subject:
    await storage.ledger.grant(a_grant(tenant, 100, f"g-{subject}", subject))
    old = []
    for k in range(OLD_SESSIONS):
        session = a_session(tenant, subject, T0 + timedelta(minutes=10 * k))
        assert await storage.sessions.add(session)
        await with_events(storage, tenant, session, OLD_EVENTS)
        end = Exit(session.started_at + timedelta(minutes=8))
        await storage.sessions.close(tenant.id, session.id, end, frozenset(), NOW, SHUT)
        old.append(session.id)
    billed = a_session(tenant, subject, T0 + timedelta(minutes=40), kind="counseling")
    assert await storage.sessions.add(billed)
    await with_events(storage, tenant, billed, BILLED_EVENTS)
    end_at = billed.started_at + timedelta(minutes=3)
    await storage.sessions.close(tenant.id, billed.id, Exit(end_at), RATED, NOW, SHUT)
    stored = await storage.sessions.get(tenant.id, billed.id)
    if stored.charge_state is ChargeState.PENDING:  # PostgreSQL may charge in the close
        assert await storage.ledger.settle(tenant.id, billed.id, 0, 6, end_at) is not None
    recent = a_session(tenant, subject, RECENT)
    assert await storage.sessions.add(recent)
    await with_events(storage, tenant, recent, RECENT_EVENTS)
    await storage.resources.register(tenant.id, subject, "pdf-1", "pdf", RECENT, None)
    refused = RefusedStart(subject, "practice", Refusal.TRIAL_EXHAUSTED, RECENT.date())
    await storage.refused_starts.record(tenant.id, refused)
    return Subject(subject, old, billed.id, recent.id)


async def an_abandoned_erasure(storage: Any, tenant: Tenant, subject: str) -> Subject:
    """The subject, with a session pending its charge, whose erasure failed midway at T0 + 1 h:
    its sessions under the kept pseudonym, its ledger still under its id."""
    made = await a_subject(storage, tenant, subject)
    made.pending = (await closed(storage, tenant, subject)).id
    await erasure_that_fails_midway(storage, tenant, subject)
    return made


async def some_snapshots(storage: Any, tenant: Tenant, source: str) -> None:
    """Two old snapshots (retention deletes them) and a recent one."""
    await storage.snapshots.add(
        tenant.id,
        [Snapshot(source, when, 30.5, 41.0, 2048.0, 1000, 12, 1) for when in (T0, at_minute(1))]
        + [Snapshot(source, RECENT, 30.5, 41.0, 2048.0, 1000, 12, 1)],
    )


def at_minute(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


async def erase(storage: Any, tenant: Tenant, subject: str, **ports: Any) -> Erased:
    use_case = wired(storage, FakeClock(RUN_AT), **ports).use_cases().erase_subject()
    erased: Erased = await use_case(EraseSubjectCommand(tenant, subject))
    return erased


async def retention(storage: Any) -> Deleted:
    apply = wired(storage, FakeClock(RUN_AT)).jobs().apply_retention()
    deleted: Deleted = await apply(ApplyRetentionCommand())
    return deleted


async def left_under(storage: Any, tenant: Tenant, subject: str) -> list[str]:
    """Where the store still names `subject` (SQL: each table's subject_id column; MongoDB:
    each collection's subject_id field; memory: each record or key of its store)."""
    if hasattr(storage, "engine"):
        found = []
        async with storage.engine.connect() as conn:
            for table in metadata.sorted_tables:
                if "subject_id" not in table.c or "tenant_id" not in table.c:
                    continue
                query = select(func.count()).where(
                    table.c.tenant_id == tenant.id, table.c.subject_id == subject
                )
                if n := (await conn.execute(query)).scalar_one():
                    found.append(f"{table.name}: {n}")
        return found
    if hasattr(storage, "db"):
        found = []
        for name in await storage.db.list_collection_names():
            theirs = {"tenant_id": tenant.id, "subject_id": subject}
            if n := await storage.db[name].count_documents(theirs):
                found.append(f"{name}: {n}")
        return found
    store = storage.erasure._store

    def names(thing: Any) -> bool:
        if isinstance(thing, tuple):
            return any(map(names, thing))
        if isinstance(thing, str):
            return thing == subject
        inner = getattr(thing, "subscription", None)
        return getattr(thing, "subject_id", None) == subject or (inner is not None and names(inner))

    found = []
    for part in dataclasses.fields(store):
        held = getattr(store, part.name)
        items = list(held.items()) if isinstance(held, dict) else [(None, v) for v in held]
        n = sum(
            names(key) or (names(value) if not isinstance(value, list) else any(map(names, value)))
            for key, value in items
        )
        if n:
            found.append(f"{part.name}: {n}")
    return found


async def check_erased(storage: Any, tenant: Tenant, subject: Subject, consumed: int) -> str:
    """Nothing of the subject left under its id: its kept sessions under one pseudonym, with
    their events cleared and their deleted events remembered, its ledger there. The pseudonym."""
    assert await left_under(storage, tenant, subject.id) == [], subject.id
    assert await storage.erasure.kept(tenant.id, subject.id) is None
    billed = await storage.sessions.get(tenant.id, subject.billed)
    recent = await storage.sessions.get(tenant.id, subject.recent)
    pseudonym = billed.subject_id
    assert is_pseudonym(pseudonym) and recent.subject_id == pseudonym, (billed, recent)
    for session in (billed, recent):
        assert "email" not in session.attributes and "ip" not in session.attributes
        assert session.attributes.get("plan") == "pro"
    if subject.pending is not None:
        pending = await storage.sessions.get(tenant.id, subject.pending)
        assert pending.subject_id == pseudonym
    assert await storage.ledger.balance(tenant.id, pseudonym) == Balance(pseudonym, 100, consumed)
    assert await storage.ledger.balance(tenant.id, subject.id) == Balance(subject.id, 0, 0)
    events = await storage.events.find(tenant.id, subject.recent, 100)
    assert [(e.sequence_no, e.label, e.data) for e in events] == [
        (n, None, None) for n in range(1, RECENT_EVENTS + 1)
    ]
    return str(pseudonym)


async def check_untouched(storage: Any, tenant: Tenant, subject: Subject) -> None:
    for session_id in (subject.billed, subject.recent):
        session = await storage.sessions.get(tenant.id, session_id)
        assert session.subject_id == subject.id
        assert session.attributes["email"] == f"{subject.id}@example.com"
    events = await storage.events.find(tenant.id, subject.recent, 100)
    assert [(e.label, e.data) for e in events] == [("q", {"text": "my answer"})] * RECENT_EVENTS
    assert await storage.ledger.balance(tenant.id, subject.id) == Balance(subject.id, 100, 6)
    left = await left_under(storage, tenant, subject.id)
    for kind in ("sessions", "ledger", "refused_starts"):
        assert any(kind in where for where in left), (kind, left)


async def check_retained(storage: Any, tenant: Tenant, subjects: list[Subject]) -> None:
    """Old unbilled sessions gone; each billed one kept without its events, remembering them
    all as deleted (no gap)."""
    for subject in subjects:
        for session_id in subject.old:
            assert await storage.sessions.get(tenant.id, session_id) is None
        billed = await storage.sessions.get(tenant.id, subject.billed)
        assert billed.charge_state is ChargeState.CHARGED
        assert await storage.events.find(tenant.id, subject.billed, 100) == []
        assert billed.deleted_events == [(1, BILLED_EVENTS)], (subject.id, billed.deleted_events)
        recent = await storage.sessions.get(tenant.id, subject.recent)
        assert recent.deleted_events == []


async def test_erasures_racing_retention_runs_leave_nothing_under_a_real_id_and_count_once(
    storage: Any, storage_url: str, tenant: Tenant, race: Race
) -> None:
    """Each round: three subjects erased, one whose erasure was abandoned erased again, one
    abandoned left to retention, one nobody erases; four erasures and two retention runs at
    once. Then: no error anywhere, the erased and abandoned subjects gone from every table or
    collection, their ledgers whole under their pseudonyms, every ledger balanced, each old
    event and session deleted and counted once, the untouched subject untouched."""
    await storage.rates.put(tenant.id, COUNSELING)
    rounds = ROUNDS.get(storage_url.split(":")[0].split("+")[0], OTHER_ROUNDS)
    for round_ in range(rounds):
        erased = [await a_subject(storage, tenant, f"r{round_}-erased-{i}") for i in range(3)]
        again = await an_abandoned_erasure(storage, tenant, f"r{round_}-again")
        abandoned = await an_abandoned_erasure(storage, tenant, f"r{round_}-abandoned")
        untouched = await a_subject(storage, tenant, f"r{round_}-untouched")
        everyone = [*erased, again, abandoned, untouched]
        await some_snapshots(storage, tenant, f"lk-{round_}")

        def erasing(subject: Subject) -> Any:
            return lambda racer: erase(racer, tenant, subject.id)

        outcomes = await race(
            *(erasing(s) for s in [*erased, again]),
            retention,
            retention,
            return_exceptions=True,
        )

        failed = [o for o in outcomes if isinstance(o, BaseException)]
        assert failed == [], f"round {round_}: {failed!r}"
        runs: list[Deleted] = outcomes[-2:]
        assert [run.failures for run in runs] == [[], []], f"round {round_}"
        assert sum(run.events for run in runs) == OLD_EVENTS_OF_A_SUBJECT * len(everyone)
        assert sum(run.sessions for run in runs) == OLD_SESSIONS * len(everyone)
        assert sum(run.snapshots for run in runs) == 2
        assert sum(run.erasures_finished for run in runs) in (1, 2)
        for subject in erased:
            await check_erased(storage, tenant, subject, consumed=6)
        for subject in (again, abandoned):
            await check_erased(storage, tenant, subject, consumed=6)  # the pending not yet
        await check_untouched(storage, tenant, untouched)
        await check_retained(storage, tenant, everyone)
        assert await storage.erasure.unfinished(tenant.id, LONG_AFTER, 10) == []
        if hasattr(storage, "engine"):
            kept, summed = await kept_and_summed(storage, tenant.id)
            assert kept == summed
        # The charges left pending settle under the pseudonyms the ledgers moved to.
        pending = [await storage.sessions.get(tenant.id, s.pending) for s in (again, abandoned)]
        await settled_by_the_reaper(storage, tenant, pending)
        for subject in (again, abandoned):
            await check_erased(storage, tenant, subject, consumed=12)
    if hasattr(storage, "engine"):
        kept, summed = await kept_and_summed(storage, tenant.id)
        assert kept == summed
    assert (await retention(storage)).events == 0


async def test_an_erasure_whose_first_page_retention_deleted_still_erases_the_rest(
    storage: Any, tenant: Tenant, race: Race, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ana has 5 old ended unbilled sessions (a whole erasure page: SESSIONS, made 5) and a
    recent one. Her erasure lists the first page; retention deletes those 5 sessions before the
    erasure erases them (forced: the erasure paused at its `erase_sessions`). The erasure's
    step then erases none of the page, and the next page holds the recent session. Found by
    the review: the sweep took a page that erased nothing for its end, moved the ledger and
    called `finished`, so nothing (not retention either) ever erased the recent session, left
    under 'ana' with her email, client key and events, on every store."""
    monkeypatch.setattr(application.data_rights.erase_subject, "SESSIONS", PAGE)
    await storage.ledger.grant(a_grant(tenant, 100, "g-ana", "ana"))
    for k in range(PAGE):
        session = a_session(tenant, "ana", T0 + timedelta(minutes=k))
        assert await storage.sessions.add(session)
        end = Exit(session.started_at + timedelta(minutes=5))
        await storage.sessions.close(tenant.id, session.id, end, frozenset(), NOW, SHUT)
    recent = a_session(tenant, "ana", RECENT)
    assert await storage.sessions.add(recent)
    await with_events(storage, tenant, recent, 2)
    reached, go = threading.Event(), threading.Event()

    async def erasing(racer: Any) -> Erased:
        paused = Pause(racer.erasure, "erase_sessions", reached, go)
        return await erase(racer, tenant, "ana", erasure=paused)

    erased, deleted = await race(erasing, after(reached, go, retention))

    assert deleted.sessions == PAGE and deleted.failures == []
    assert await storage.erasure.kept(tenant.id, "ana") is None  # the erasure says it is done
    left = await storage.sessions.get(tenant.id, recent.id)
    events = await storage.events.find(tenant.id, recent.id, 10)
    assert (left.subject_id, left.client_key, left.attributes.get("email")) != (
        "ana",
        "browser-ana",
        "ana@example.com",
    ), f"left under her id: {left}, its events {events}, and {erased}"
    assert erased.sessions == 1, erased
    assert await left_under(storage, tenant, "ana") == []


class ErasesNothing(Proxy):
    """An erasure port whose step erases none of the sessions it is given: what no store does
    to a session still under the subject, and what would keep a sweep listing that page."""

    async def erase_sessions(self, tenant_id: str, session_ids: Any, forgetting: Any) -> Erased:
        return Erased()


async def test_an_erasure_that_cannot_erase_a_page_stops_unfinished_for_retention_to_finish(
    storage: Any, tenant: Tenant
) -> None:
    """A page listed again after it erased none of its sessions ends the sweep with a conflict,
    rather than listing it for good; the erasure stays under way (its pseudonym kept, the
    ledger not moved), and retention finishes it once it is abandoned."""
    await storage.ledger.grant(a_grant(tenant, 100, "g-ana", "ana"))
    recent = a_session(tenant, "ana", RECENT)
    assert await storage.sessions.add(recent)

    with pytest.raises(Conflict):
        await erase(storage, tenant, "ana", erasure=ErasesNothing(storage.erasure))

    pseudonym = await storage.erasure.kept(tenant.id, "ana")
    assert pseudonym is not None
    assert (await storage.ledger.balance(tenant.id, "ana")).granted == 100
    later = wired(storage, FakeClock(RUN_AT + ABANDONED_AFTER + timedelta(minutes=1)))
    finished = await later.jobs().apply_retention()(ApplyRetentionCommand())
    assert (finished.erasures_finished, finished.failures) == (1, []), finished
    left = await storage.sessions.get(tenant.id, recent.id)
    assert left.subject_id == pseudonym
    assert await left_under(storage, tenant, "ana") == []


async def test_an_erasure_clearing_events_takes_their_sessions_first_as_retention_does(
    storage: Any, storage_url: str, tenant: Tenant
) -> None:
    """Retention deletes events after locking their sessions in id order; an erasure clearing a
    page of the same sessions' events updated them in whatever order its plan read them, without
    the sessions' locks, and the two deadlocked (seen once in the free race above, under a
    loaded CI run). The erasure now locks the sessions first: while another writer holds one,
    it clears nothing and waits its turn."""
    on_postgresql(storage_url)
    session = await stored_session(storage, tenant)
    labelled = [Event(session.id, n, "tap", T0, label="red") for n in (1, 2)]
    await storage.events.append(tenant.id, list(enumerate(labelled)), NOW, OPEN)

    async with held(storage_url, [session]) as release:
        clearing = asyncio.ensure_future(storage.erasure.clear_events(tenant.id, [session.id], 10))
        await asyncio.wait({clearing}, timeout=1)
        assert not clearing.done()
        await release()
        assert await asyncio.wait_for(clearing, 10) == 2
    assert [e.label for e in await storage.events.find(tenant.id, session.id, 10)] == [None] * 2
