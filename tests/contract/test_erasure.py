"""Subject erasure, resource deletion and session retention, on every store: what is personal
goes, what the books need stays, and racing callers neither crash nor count twice."""

import asyncio
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import pytest

import adapters.ledger_holds
import adapters.mongodb.erasure
import adapters.sqlalchemy.erasure
from application.data_rights.delete_resource import DeletedResource, DeleteResourceCommand
from application.data_rights.erase_subject import EraseSubjectCommand
from application.data_rights.ports import EndPlace, Erased, SessionsOf
from application.ports import Window
from application.retention.apply_retention import ApplyRetentionCommand
from application.rollups.roll_up_usage import RollUpUsageCommand
from application.sessions.ports import SessionFilter
from domain.calendar import Period
from domain.credits import LedgerEntry
from domain.erasure import is_pseudonym
from domain.error_reports import ErrorFilter
from domain.errors import Contended
from domain.events import Event
from domain.plans import Plan, PlanLimits, Subscription
from domain.refusals import Refusal, RefusedStart
from domain.rollups import Activity, Rollup
from domain.sales import SalesFilter
from domain.session import Exit, Session
from domain.tenants import Tenant
from tests.contract.builders import (
    NOW,
    OPEN,
    SHUT,
    T0,
    add_tenant,
    at,
    month_of,
    stored_session,
    wired,
)
from tests.contract.races import Proxy, Race
from tests.contract.telemetry_builders import a_full_error, a_sale
from tests.fakes import FakeClock

pytestmark = pytest.mark.anyio

PERSONAL = {"ip": "203.0.113.7", "user_agent": "Firefox", "referrer": "https://a.example"}


@pytest.fixture
async def tenant(storage: Any) -> Tenant:
    return await add_tenant(storage, personal_attributes=("email",))


async def erase(storage: Any, tenant: Tenant, subject_id: str) -> Erased:
    erase_subject = wired(storage).use_cases().erase_subject()
    result: Erased = await erase_subject(EraseSubjectCommand(tenant, subject_id))
    return result


async def delete_resource(storage: Any, tenant: Tenant, resource_id: str) -> DeletedResource:
    delete = wired(storage).use_cases().delete_resource()
    result: DeletedResource = await delete(DeleteResourceCommand(tenant, resource_id))
    return result


async def with_events(storage: Any, tenant: Tenant, session: Session, n: int = 3) -> None:
    batch = [
        (i, Event(session.id, i + 1, "answer", at(1), label="q", data={"text": "my answer"}))
        for i in range(n)
    ]
    await storage.events.append(tenant.id, batch, NOW, OPEN)


async def charged(
    storage: Any, tenant: Tenant, subject_id: str, credits: int, **fields: Any
) -> Session:
    """A practice session of the subject, closed and charged `credits`."""
    session = await stored_session(
        storage, tenant, kind="practice", subject_id=subject_id, **fields
    )
    rated = frozenset({"practice"})
    await storage.sessions.close(tenant.id, session.id, Exit(at(5)), rated, NOW, SHUT)
    assert await storage.ledger.settle(tenant.id, session.id, 0, credits, at(5)) is not None
    return session


async def grant(storage: Any, tenant: Tenant, subject_id: str, amount: int) -> None:
    key = f"grant-{subject_id}-{amount}"
    entry = LedgerEntry.grant(key, tenant.id, subject_id, amount, "welcome", key, T0)
    await storage.ledger.grant(entry)


@dataclass
class Visit:
    """A subject's sessions with all that hangs off them."""

    viewing: Session
    billed: Session


async def a_visit(storage: Any, tenant: Tenant, subject_id: str = "ana") -> Visit:
    attributes = {**PERSONAL, "email": "ana@example.com", "plan": "pro"}
    viewing = await stored_session(
        storage, tenant, subject_id=subject_id, client_key="browser-1", attributes=attributes
    )
    await with_events(storage, tenant, viewing)
    await storage.errors.add(tenant.id, [a_full_error(f"crash-{subject_id}", viewing.id)])
    sale = a_sale(f"sale-{subject_id}", viewing.id, attributes={"email": "a@x.io", "store": "s1"})
    await storage.sales.add(tenant.id, [sale])
    await grant(storage, tenant, subject_id, 100)
    billed = await charged(storage, tenant, subject_id, 30, attributes=attributes)
    await storage.subscriptions.put(tenant.id, Subscription(subject_id, "trial", at(60)), at(0))
    await storage.subscriptions.put(tenant.id, Subscription(subject_id, "pass", at(60 * 24)), at(1))
    await storage.resources.register(tenant.id, subject_id, "pdf-1", "pdf", at(0), None)
    return Visit(viewing, billed)


async def test_an_erased_subject_keeps_its_sessions_and_books_under_a_pseudonym(
    storage: Any, tenant: Tenant
) -> None:
    visit = await a_visit(storage, tenant)
    other = await stored_session(storage, tenant, subject_id="bo", attributes=dict(PERSONAL))
    await with_events(storage, tenant, other)
    refused = RefusedStart("ana", "practice", Refusal.TRIAL_EXHAUSTED, at(0).date())
    await storage.refused_starts.record(tenant.id, refused)

    erased = await erase(storage, tenant, "ana")
    # Refused again after the erasure: someone new to the books, counted apart.
    await storage.refused_starts.record(tenant.id, refused)

    assert erased == Erased(sessions=2, events=3, errors=1, sales=1)
    viewing = await storage.sessions.get(tenant.id, visit.viewing.id)
    billed = await storage.sessions.get(tenant.id, visit.billed.id)
    pseudonym = viewing.subject_id
    assert is_pseudonym(pseudonym) and len(pseudonym) == len("erased:") + 32
    assert billed.subject_id == pseudonym
    assert is_pseudonym(viewing.client_key) and viewing.client_key != pseudonym
    assert viewing.attributes == billed.attributes == {"plan": "pro"}
    assert (viewing.started_at, viewing.kind, viewing.resource_id) == (
        visit.viewing.started_at,
        visit.viewing.kind,
        visit.viewing.resource_id,
    )
    assert billed.ended_at == at(5) and billed.charge is not None and billed.charge.credits == 30
    events = await storage.events.find(tenant.id, viewing.id, 10)
    assert [(e.type, e.label, e.data) for e in events] == [("answer", None, None)] * 3
    (error,) = await storage.errors.find(tenant.id, ErrorFilter(), Window(), 10)
    assert error.context is None and error.session_id == viewing.id
    assert [(b.type, b.label, b.data) for b in error.breadcrumbs] == [
        ("tap", None, None),
        ("printer", None, None),
    ]
    assert error.impact is not None and error.impact.sale_lost
    (sale,) = await storage.sales.find(tenant.id, SalesFilter(), Window(), 10)
    assert sale.attributes == {"store": "s1"} and sale.amounts.net > 0
    # The books balance under the pseudonym; nothing is left under the subject.
    assert (await storage.ledger.balance(tenant.id, pseudonym)).balance == 70
    assert (await storage.ledger.balance(tenant.id, "ana")).balance == 0
    assert await storage.ledger.entries(tenant.id, "ana", 10) == []
    assert await storage.subscriptions.get(tenant.id, "ana") is None
    assert (await storage.subscriptions.get(tenant.id, pseudonym)).plan_id == "pass"
    # The history went with it, whole and in order.
    assert await storage.subscriptions.history(tenant.id, "ana") == []
    history = await storage.subscriptions.history(tenant.id, pseudonym)
    assert [(h.number, h.subscription.plan_id, h.set_at) for h in history] == [
        (2, "pass", at(1)),
        (1, "trial", at(0)),
    ]
    assert {h.subscription.subject_id for h in history} == {pseudonym}
    assert await storage.resources.count_in_month(tenant.id, pseudonym, month_of(at(0))) == 1
    assert await storage.resources.count_in_month(tenant.id, "ana", month_of(at(0))) == 0
    assert await storage.sessions.find(tenant.id, SessionFilter(subject_id="ana"), 10) == []
    day = at(0).date()
    tally = await storage.refused_starts.tally(tenant.id, day, day)
    assert (tally.of(Refusal.TRIAL_EXHAUSTED), tally.subjects_exhausted) == (2, 2)
    # Someone else's are untouched.
    kept = await storage.sessions.get(tenant.id, other.id)
    assert (kept.subject_id, kept.attributes) == ("bo", PERSONAL)
    assert [e.data for e in await storage.events.find(tenant.id, other.id, 10)] == [
        {"text": "my answer"}
    ] * 3


async def test_erasing_again_or_an_unknown_subject_changes_nothing(
    storage: Any, tenant: Tenant
) -> None:
    await a_visit(storage, tenant)
    await erase(storage, tenant, "ana")

    assert await erase(storage, tenant, "ana") == Erased()
    assert await erase(storage, tenant, "nobody") == Erased()


async def test_a_subject_is_erased_in_bounded_steps(storage: Any, tenant: Tenant) -> None:
    sessions = [await stored_session(storage, tenant, n, subject_id="ana") for n in range(3)]
    for session in sessions:
        await with_events(storage, tenant, session, 4)
    e = storage.erasure
    ids = [s.id for s in sessions]

    assert await e.clear_events(tenant.id, ids, 5) == 5
    assert await e.clear_events(tenant.id, ids, 5) == 5
    assert await e.clear_events(tenant.id, ids, 5) == 2
    assert await e.clear_events(tenant.id, ids, 5) == 0


async def test_a_subjects_subscription_and_its_history_move_in_bounded_steps(
    storage: Any, tenant: Tenant
) -> None:
    for n in range(3):
        subscription = Subscription("ana", "pass", at(60 * (n + 1)))
        await storage.subscriptions.put(tenant.id, subscription, at(n))
    e = storage.erasure

    # The current subscription and its three history entries: four to move, two at a time.
    assert await e.move_subject(tenant.id, "ana", "erased:x", 2) == 2
    assert await e.move_subject(tenant.id, "ana", "erased:x", 2) == 2
    assert await e.move_subject(tenant.id, "ana", "erased:x", 2) == 0
    assert await storage.subscriptions.history(tenant.id, "ana") == []
    moved = await storage.subscriptions.history(tenant.id, "erased:x")
    assert [h.number for h in moved] == [3, 2, 1]


async def test_two_erasures_of_one_subject_at_once_erase_each_session_once(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    sessions = [await stored_session(storage, tenant, n, subject_id="ana") for n in range(6)]
    for session in sessions:
        await with_events(storage, tenant, session, 2)
    await grant(storage, tenant, "ana", 50)

    async def erasing(racer: Any) -> Erased:
        return await erase(racer, tenant, "ana")

    first, second = await race(erasing, erasing)

    # They take turns on the subject's ledger: the second finds nothing left.
    assert {first, second} == {Erased(sessions=6, events=12), Erased()}
    for session in sessions:
        erased = await storage.sessions.get(tenant.id, session.id)
        assert is_pseudonym(erased.subject_id)
        assert all(e.data is None for e in await storage.events.find(tenant.id, session.id, 10))
    # The grant went with the first; its pseudonym's balance is the sum of its ledger.
    ledger = [r async for r in storage.archive.export(tenant.id) if isinstance(r, LedgerEntry)]
    assert [(is_pseudonym(e.subject_id), e.amount) for e in ledger] == [(True, 50)]
    (entry,) = ledger
    assert (await storage.ledger.balance(tenant.id, entry.subject_id)).balance == 50


async def test_an_erasure_under_way_keeps_one_pseudonym_for_its_subject_until_it_is_done(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    """Callers asking at once for the pseudonym of one subject's erasure all get the same one
    (one of those they drew), and the erasure keeps the time the first asked; another subject
    gets its own. The unfinished erasures are listed by when they began. Once an erasure is
    done nothing keeps its pseudonym: the next erasure of the subject draws anew."""
    e = storage.erasure

    def asking(drawn: str) -> Any:
        return lambda racer: racer.erasure.pseudonym_for(tenant.id, "ana", drawn, at(1))

    drawn = [f"erased:{n}" for n in range(4)]
    kept = await race(*(asking(d) for d in drawn))

    assert len(set(kept)) == 1 and kept[0] in drawn
    assert await e.pseudonym_for(tenant.id, "ana", "erased:late", at(9)) == kept[0]
    assert await e.pseudonym_for(tenant.id, "bo", "erased:bo", at(5)) == "erased:bo"
    assert await e.unfinished(tenant.id, at(5), 10) == ["ana"]
    assert await e.unfinished(tenant.id, at(6), 10) == ["ana", "bo"]
    assert await e.unfinished(tenant.id, at(6), 1) == ["ana"]
    assert (await e.kept(tenant.id, "ana"), await e.kept(tenant.id, "cy")) == (kept[0], None)
    await e.finished(tenant.id, "ana", "erased:another")  # not the one kept: it stays
    assert await e.kept(tenant.id, "ana") == kept[0]
    await e.finished(tenant.id, "ana", kept[0])
    assert await e.kept(tenant.id, "ana") is None
    assert await e.unfinished(tenant.id, at(6), 10) == ["bo"]
    assert await e.pseudonym_for(tenant.id, "ana", "erased:next", at(10)) == "erased:next"
    assert await e.pseudonym_for(tenant.id, "bo", "erased:again", at(10)) == "erased:bo"

    await stored_session(storage, tenant, subject_id="cy")
    assert await erase(storage, tenant, "cy") == Erased(sessions=1)
    assert await e.pseudonym_for(tenant.id, "cy", "erased:cy", at(10)) == "erased:cy"


async def test_an_erasure_that_waits_too_long_for_another_of_its_subject_is_refused(
    storage: Any, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    for module in (adapters.ledger_holds, adapters.sqlalchemy.erasure, adapters.mongodb.erasure):
        monkeypatch.setattr(module, "ERASURE_WAIT_SECONDS", 0.3)
    session = await stored_session(storage, tenant, subject_id="ana")

    async def erasing_meanwhile() -> None:
        with pytest.raises(Contended, match="another erasure of this subject"):
            await erase(storage, tenant, "ana")

    await storage.erasure.with_ledgers_held(tenant.id, ["ana", "erased:1"], erasing_meanwhile)

    assert (await storage.sessions.get(tenant.id, session.id)).subject_id == "ana"
    assert await erase(storage, tenant, "ana") == Erased(sessions=1)


async def test_an_erasure_racing_event_ingest_erases_every_event_stored_before_it(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    sessions = [await stored_session(storage, tenant, n, subject_id="ana") for n in range(4)]
    batch = [
        (i, Event(s.id, 1, "answer", at(1), label="q", data={"text": "mine"}))
        for i, s in enumerate(sessions)
    ]

    async def ingesting(racer: Any) -> Any:
        return await racer.events.append(tenant.id, batch, NOW, OPEN)

    async def erasing(racer: Any) -> Erased:
        return await erase(racer, tenant, "ana")

    ingested, erased = await race(ingesting, erasing)

    # Every event was stored and none kept what it said: those the erasure found it cleared
    # (and counted), and those that came after it were stored without it (domain.events).
    assert ingested.inserted == 4 and erased.sessions == 4
    stored = [e for s in sessions for e in await storage.events.find(tenant.id, s.id, 10)]
    assert len(stored) == 4 and erased.events <= 4
    assert [(e.label, e.data) for e in stored] == [(None, None)] * 4
    for session in sessions:
        assert is_pseudonym((await storage.sessions.get(tenant.id, session.id)).subject_id)


async def test_a_deleted_resource_loses_its_unbilled_sessions_and_erases_the_billed(
    storage: Any, tenant: Tenant
) -> None:
    unbilled = await stored_session(
        storage, tenant, subject_id="bo", resource_id="webinar-9", attributes=dict(PERSONAL)
    )
    await with_events(storage, tenant, unbilled, 5)
    sold = await stored_session(
        storage, tenant, subject_id=None, client_key="kiosk-1", resource_id="webinar-9"
    )
    await with_events(storage, tenant, sold, 2)
    await storage.sales.add(tenant.id, [a_sale("sale-1", sold.id)])
    await grant(storage, tenant, "ana", 100)
    paid = await charged(
        storage, tenant, "ana", 30, resource_id="webinar-9", attributes=dict(PERSONAL)
    )
    elsewhere = await stored_session(storage, tenant, subject_id="bo", resource_id="webinar-1")
    await with_events(storage, tenant, elsewhere, 1)
    for hour in range(2):
        await storage.rollups.replace(
            tenant.id,
            Rollup(
                Period.HOUR,
                T0 + timedelta(hours=hour),
                [Activity("practice", "webinar-9", 1), Activity("webinar", "webinar-1", 1)],
            ),
        )

    deleted = await delete_resource(storage, tenant, "webinar-9")

    assert deleted == DeletedResource(
        sessions=1, events=5, rollups=2, erased=Erased(sessions=2, events=2, sales=1)
    )
    assert await storage.sessions.get(tenant.id, unbilled.id) is None
    assert await storage.events.find(tenant.id, unbilled.id, 10) == []
    kiosk = await storage.sessions.get(tenant.id, sold.id)
    assert kiosk.subject_id is None and is_pseudonym(kiosk.client_key)
    assert [e.data for e in await storage.events.find(tenant.id, sold.id, 10)] == [None] * 2
    kept = await storage.sessions.get(tenant.id, paid.id)
    assert kept.charge is not None and not set(PERSONAL) & set(kept.attributes)
    # The subject asked for nothing: the session stays on its account, whose balance is whole.
    assert kept.subject_id == "ana"
    assert (await storage.ledger.balance(tenant.id, "ana")).balance == 70
    assert (await storage.sessions.get(tenant.id, elsewhere.id)).subject_id == "bo"
    assert len(await storage.events.find(tenant.id, elsewhere.id, 10)) == 1
    hours = await storage.rollups.find(tenant.id, Period.HOUR, Window())
    assert [[a.resource_id for a in h.activity] for h in hours] == [["webinar-1"]] * 2

    assert await delete_resource(storage, tenant, "webinar-9") == DeletedResource()
    assert await delete_resource(storage, tenant, "never-seen") == DeletedResource()


async def test_an_attribute_named_personal_since_the_callers_key_was_remembered_is_erased(
    storage: Any, tenant: Tenant
) -> None:
    """`tenant` is as a server process remembers it after another took the change (`seat`
    made personal): its erasure and its deletion of a resource take `seat` out too."""
    await grant(storage, tenant, "ana", 100)
    await grant(storage, tenant, "bo", 100)
    ana = await charged(storage, tenant, "ana", 30, attributes={"seat": "4B", "plan": "pro"})
    bos = await charged(
        storage, tenant, "bo", 30, resource_id="webinar-9", attributes={"seat": "9A"}
    )
    await storage.tenants.change_settings(
        tenant.id, lambda s: replace(s, personal_attributes=("email", "seat"))
    )

    await wired(storage).use_cases().erase_subject()(EraseSubjectCommand(tenant, "ana"))
    await wired(storage).use_cases().delete_resource()(DeleteResourceCommand(tenant, "webinar-9"))

    assert (await storage.sessions.get(tenant.id, ana.id)).attributes == {"plan": "pro"}
    assert (await storage.sessions.get(tenant.id, bos.id)).attributes == {}


class WritesAnHourWhenTold(Proxy):
    """The rollups' port: the run's first hour, read already, is written once `go` is set."""

    def __init__(self, inner: Any, reached: asyncio.Event, go: asyncio.Event) -> None:
        super().__init__(inner)
        self._reached, self._go = reached, go

    async def replace(self, tenant_id: str, rollup: Rollup) -> Any:
        if rollup.period is Period.HOUR and not self._reached.is_set():
            self._reached.set()
            await self._go.wait()
        return await self._inner.replace(tenant_id, rollup)


async def test_a_resource_deleted_while_a_rollup_run_writes_its_hour_is_gone_after_the_next_run(
    storage: Any, tenant: Tenant
) -> None:
    for resource_id in ("webinar-9", "webinar-1"):
        session = await stored_session(storage, tenant, resource_id=resource_id)
        await storage.sessions.close(tenant.id, session.id, Exit(at(5)), frozenset(), NOW, SHUT)
    clock = FakeClock(T0 + timedelta(days=1))
    reached, go = asyncio.Event(), asyncio.Event()
    rollups = WritesAnHourWhenTold(storage.rollups, reached, go)
    under_way = asyncio.create_task(
        wired(storage, clock, rollups=rollups).jobs().roll_up_usage()(RollUpUsageCommand())
    )
    await asyncio.wait_for(reached.wait(), 30)  # a run that never gets there fails the test

    await delete_resource(storage, tenant, "webinar-9")
    go.set()
    await under_way
    await wired(storage, clock).jobs().roll_up_usage()(RollUpUsageCommand())

    for period in (Period.HOUR, Period.DAY):
        rolled = await storage.rollups.find(tenant.id, period, Window())
        assert {a.resource_id for r in rolled for a in r.activity} == {"webinar-1"}, period


async def test_two_deletions_of_one_resource_at_once_delete_each_session_once(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    for n in range(5):
        session = await stored_session(storage, tenant, n, resource_id="webinar-9")
        await with_events(storage, tenant, session, 2)

    async def deleting(racer: Any) -> DeletedResource:
        return await delete_resource(racer, tenant, "webinar-9")

    first, second = await race(deleting, deleting)

    assert (first.sessions + second.sessions, first.events + second.events) == (5, 10)
    assert await storage.erasure.sessions(tenant.id, SessionsOf(resource_id="webinar-9"), 10) == []


async def test_expired_sessions_resume_past_a_place_in_end_then_id_order(storage: Any) -> None:
    """Retention's steps walk the expired sessions once a run, each past the last place the
    step before listed: none listed twice or skipped, sessions that ended together included,
    those the books keep never listed."""
    tenant = await add_tenant(storage, "initech")
    ended = []
    for n, minute in enumerate((5, 5, 5, 5, 9)):  # a page of 2 ends among those at 5
        session = await stored_session(storage, tenant, subject_id=f"s{n}")
        await storage.sessions.close(
            tenant.id, session.id, Exit(at(minute)), frozenset(), NOW, SHUT
        )
        ended.append(session)
    await storage.sales.add(tenant.id, [a_sale("sale-1", ended[1].id)])  # the books keep it
    expired = storage.erasure.expired_sessions

    whole = await expired(tenant.id, at(60), 10, frozenset())
    walked: list[EndPlace] = []
    after = None
    for _ in range(len(ended)):  # a walk that never ends fails below, not forever
        if not (page := await expired(tenant.id, at(60), 2, frozenset(), after)):
            break
        walked, after = walked + page, page[-1]

    assert walked == whole
    assert sorted(p.id for p in whole) == sorted(s.id for s in ended if s is not ended[1])
    assert [(p.ended_at, p.id) for p in whole] == sorted((p.ended_at, p.id) for p in whole)
    assert [p.ended_at for p in whole] == [at(5), at(5), at(5), at(9)]


async def test_retention_deletes_old_ended_sessions_but_keeps_billed_counted_and_recent_ones(
    storage: Any,
) -> None:
    """Kept: what the books name, a subject's session a plan's limit counts (its trial is not
    handed back), what is still running or recent."""
    # An hour of late data: a session ended a day ago takes no more events, so it may go.
    tenant = await add_tenant(
        storage, "globex", session_retention_days=1, late_data_window_seconds=3600
    )
    limits = PlanLimits(sessions_per_resource=5, session_kinds=frozenset({"practice"}))
    await storage.plans.put(tenant.id, Plan("free", default=True, limits=limits))
    old = await stored_session(storage, tenant, subject_id="bo")
    await with_events(storage, tenant, old)
    # No subject: no limit counts it.
    anonymous = await stored_session(
        storage, tenant, kind="practice", subject_id=None, client_key="guest-1"
    )
    counted = await stored_session(storage, tenant, kind="practice", subject_id="fay")
    for ended in (old, anonymous, counted):
        await storage.sessions.close(tenant.id, ended.id, Exit(at(5)), frozenset(), NOW, SHUT)
    await grant(storage, tenant, "ana", 100)
    billed = await charged(storage, tenant, "ana", 10)
    sold = await stored_session(storage, tenant, subject_id="cy")
    await storage.sessions.close(tenant.id, sold.id, Exit(at(5)), frozenset(), NOW, SHUT)
    await storage.sales.add(tenant.id, [a_sale("sale-1", sold.id)])
    running = await stored_session(storage, tenant, subject_id="di")
    recent = await stored_session(storage, tenant, 60 * 24, subject_id="ed")
    await storage.sessions.close(
        tenant.id, recent.id, Exit(at(60 * 24 + 5)), frozenset(), NOW, SHUT
    )
    apply = wired(storage, FakeClock(at(60 * 24 + 10))).jobs().apply_retention()

    deleted = await apply(ApplyRetentionCommand("globex"))

    assert (deleted.sessions, deleted.events) == (2, 3)
    for gone in (old, anonymous):
        assert await storage.sessions.get(tenant.id, gone.id) is None
    for kept in (billed, sold, counted, running, recent):
        assert await storage.sessions.get(tenant.id, kept.id) is not None
    assert (await apply(ApplyRetentionCommand("globex"))).sessions == 0
