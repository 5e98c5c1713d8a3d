"""Hostile review of retention keeping what a free trial counts (commit 965c3b0), on every
store: which kinds are kept and for whom, paging past kept sessions, plans changed between runs,
a start racing retention, what the trial status and report read afterwards, and resource
deletion and subject erasure still doing what they did."""

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import anyio
import pytest

from application.data_rights.delete_resource import DeleteResourceCommand
from application.data_rights.erase_subject import EraseSubjectCommand
from application.data_rights.ports import Erased
from application.retention.apply_retention import ApplyRetentionCommand, Deleted
from application.sessions.start_session import StartedSession, StartSessionCommand
from application.trials.get_trial_status import GetTrialStatusQuery
from application.trials.report_trials import ReportTrialsQuery
from domain.erasure import is_pseudonym
from domain.plans import Plan, PlanLimits, Subscription, TrialExhausted, TrialStatus
from domain.session import Exit, Session, SessionRequest
from domain.tenants import Tenant
from domain.trial_report import TrialReport, TrialUse
from tests.contract.builders import NOW, SHUT, T0, at, stored_session, wired
from tests.contract.races import Race
from tests.contract.telemetry_builders import a_sale
from tests.fakes import FakeClock

pytestmark = pytest.mark.anyio

FREE = PlanLimits(sessions_per_resource=2, session_kinds=frozenset({"practice", "mock_exam"}))
# Retention (30 days of sessions) runs 40 days after T0: every session ended by then may go.
LATER = T0 + timedelta(days=40)
# Nothing in this suite should take long; a retention that spins on kept sessions never ends.
RETENTION_TIMEOUT_SECONDS = 60.0


async def with_plans(storage: Any, tenant: Tenant, *plans: Plan) -> Tenant:
    """The tenant with these plans, keeping sessions 30 days."""
    for plan in plans:
        await storage.plans.put(tenant.id, plan)
    changed: Tenant = await storage.tenants.change_settings(
        tenant.id, lambda s: replace(s, session_retention_days=30)
    )
    return changed


async def ended(storage: Any, tenant: Tenant, minutes: float = 0, **fields: Any) -> Session:
    """A session started `minutes` after T0 and ended 5 minutes later."""
    session = await stored_session(storage, tenant, minutes, **fields)
    await storage.sessions.close(
        tenant.id, session.id, Exit(at(minutes + 5)), frozenset(), NOW, SHUT
    )
    return session


def practice(subject: str | None = "ana", resource: str = "pdf-1", **fields: Any) -> Any:
    return {"kind": "practice", "resource_id": resource, "subject_id": subject, **fields}


async def retention(storage: Any, tenant: Tenant, now: datetime = LATER) -> Deleted:
    apply = wired(storage, FakeClock(now)).jobs().apply_retention()
    with anyio.fail_after(RETENTION_TIMEOUT_SECONDS):
        deleted: Deleted = await apply(ApplyRetentionCommand(tenant.name))
    assert deleted.failures == []
    return deleted


async def start(
    storage: Any, tenant: Tenant, now: datetime, kind: str = "practice", subject: str = "ana"
) -> StartedSession:
    """The subject's start on pdf-1 through the use case, at `now`."""
    request = SessionRequest(kind=kind, resource_id="pdf-1", subject_id=subject)
    command = StartSessionCommand(tenant.id, request, settings=tenant.settings)
    with anyio.fail_after(10):
        started: StartedSession = (
            await wired(storage, FakeClock(now)).use_cases().start_session()(command)
        )
    return started


async def status(storage: Any, tenant: Tenant, now: datetime, subject: str = "ana") -> TrialStatus:
    query = GetTrialStatusQuery(tenant.id, subject, "pdf-1")
    found: TrialStatus = await wired(storage, FakeClock(now)).use_cases().get_trial_status()(query)
    return found


async def gone(storage: Any, tenant: Tenant, *sessions: Session) -> list[bool]:
    return [await storage.sessions.get(tenant.id, s.id) is None for s in sessions]


# --- which kinds are kept, and for whom ----------------------------------------------------------


async def test_a_kind_only_a_limited_paid_plan_names_is_kept_for_a_free_subject_too(
    storage: Any, tenant: Tenant
) -> None:
    """The pass (not the default) limits an oddly spelled kind: ana, on the free plan, has two
    of them; once she buys the pass they count against its 3. Fails if retention kept only the
    default plan's kinds, or the kinds of the plan each subject is on now."""
    odd = "mock.exam-v2_b"
    paid = PlanLimits(sessions_per_resource=3, session_kinds=frozenset({odd}))
    tenant = await with_plans(
        storage, tenant, Plan("free", default=True, limits=FREE), Plan("pass", limits=paid)
    )
    mocks = [await ended(storage, tenant, m, **practice(kind=odd)) for m in (0, 10)]
    webinar = await ended(storage, tenant, 20, subject_id="ana")

    assert (await retention(storage, tenant)).sessions == 1

    assert await gone(storage, tenant, webinar, *mocks) == [True, False, False]
    await storage.subscriptions.put(
        tenant.id, Subscription("ana", "pass", LATER + timedelta(days=30)), LATER
    )
    assert await status(storage, tenant, LATER) == TrialStatus("pdf-1", False, 2, 1)


async def test_a_subscribers_sessions_of_the_default_plans_kinds_count_again_when_the_pass_ends(
    storage: Any, tenant: Tenant
) -> None:
    """Jun, on a pass limiting other kinds, practised twice while on it: kept, since the free
    plan counts them once the pass ends (its third start refused). Fails if retention kept the
    kinds of the subject's current plan only."""
    paid = PlanLimits(sessions_per_resource=5, session_kinds=frozenset({"webinar"}))
    tenant = await with_plans(
        storage, tenant, Plan("free", default=True, limits=FREE), Plan("pass", limits=paid)
    )
    ends = LATER + timedelta(days=1)
    await storage.subscriptions.put(tenant.id, Subscription("jun", "pass", ends), T0)
    practised = [await ended(storage, tenant, m, **practice("jun")) for m in (0, 10)]
    anonymous = await ended(storage, tenant, 20, **practice(None, client_key="guest-1"))

    assert (await retention(storage, tenant)).sessions == 1

    assert await gone(storage, tenant, anonymous, *practised) == [True, False, False]
    after_the_pass = ends + timedelta(hours=1)
    assert await status(storage, tenant, after_the_pass, "jun") == TrialStatus("pdf-1", True, 2, 0)
    with pytest.raises(TrialExhausted):
        await start(storage, tenant, after_the_pass, subject="jun")


async def test_kinds_named_only_by_plans_that_limit_no_sessions_go_as_before(
    storage: Any, tenant: Tenant
) -> None:
    """The pass is unlimited but lists the webinar; the replay plan caps uploads only. No
    subject is ever refused a start of these kinds, whatever plan it is on."""
    uploads_only = PlanLimits(resources_per_month=3, session_kinds=frozenset({"replay"}))
    listed = PlanLimits(sessions_per_resource=2, session_kinds=frozenset({"webinar"}))
    tenant = await with_plans(
        storage,
        tenant,
        Plan("free", default=True, limits=FREE),
        Plan("pass", unlimited=True, limits=listed),
        Plan("uploads", limits=uploads_only),
    )
    webinar = await ended(storage, tenant, 0, subject_id="ana")
    replay = await ended(storage, tenant, 10, kind="replay", subject_id="ana")

    await retention(storage, tenant)

    assert await gone(storage, tenant, webinar, replay) == [True, True]


async def test_an_erased_subjects_counted_sessions_go_with_retention(
    storage: Any, tenant: Tenant
) -> None:
    """Ana asked to be forgotten: her trial sessions carry `erased:…`, which no request names."""
    tenant = await with_plans(storage, tenant, Plan("free", default=True, limits=FREE))
    practised = [await ended(storage, tenant, m, **practice()) for m in (0, 10)]
    await wired(storage).use_cases().erase_subject()(EraseSubjectCommand(tenant, "ana"))

    await retention(storage, tenant)

    assert await gone(storage, tenant, *practised) == [True, True]


async def test_a_subjectless_session_of_a_counted_kind_goes_as_does_a_mongodb_one_without_the_field(
    storage: Any, tenant: Tenant, storage_url: str
) -> None:
    """No subject, no limit counts it: a null subject, and on MongoDB a document without
    `subject_id` at all (as `$ne: null` reads it). Fails on MongoDB if the filter told a
    missing field from null (e.g. `{"$not": {"$type": "null"}}`), anywhere if a null subject
    were kept."""
    tenant = await with_plans(storage, tenant, Plan("free", default=True, limits=FREE))
    null = await ended(storage, tenant, 0, **practice(None, client_key="guest-1"))
    missing = await ended(storage, tenant, 1, **practice(None, client_key="guest-2"))
    if storage_url.startswith("mongodb"):
        unset = await storage.db["sessions"].update_one(
            {"tenant_id": tenant.id, "id": missing.id}, {"$unset": {"subject_id": ""}}
        )
        assert unset.modified_count == 1
    kept = await ended(storage, tenant, 2, **practice())

    assert (await retention(storage, tenant)).sessions == 2

    assert await gone(storage, tenant, kept) == [False]
    assert await storage.sessions.existing(tenant.id, [null.id, missing.id]) == set()


async def test_retention_takes_as_many_kinds_as_the_plans_name_together(
    storage: Any, tenant: Tenant
) -> None:
    """Two plans of 16,500 kinds each (a start under either binds its 16,500 kinds: it works).
    Their union is past the 32,767 parameters asyncpg binds: on PostgreSQL it goes as one
    array (SQLite's cap here is 250,000)."""
    halves = [frozenset(f"k{half}-{n}" for n in range(16_500)) for half in ("a", "b")]
    tenant = await with_plans(
        storage,
        tenant,
        Plan("free", default=True, limits=PlanLimits(2, halves[0])),
        Plan("pass", limits=PlanLimits(2, halves[1])),
    )
    counted = await ended(storage, tenant, 0, kind="ka-7", subject_id="ana")
    webinar = await ended(storage, tenant, 10, subject_id="ana")

    deleted = (
        await wired(storage, FakeClock(LATER))
        .jobs()
        .apply_retention()(ApplyRetentionCommand(tenant.name))
    )

    assert (deleted.failures, deleted.sessions) == ([], 1)
    assert await gone(storage, tenant, webinar, counted) == [True, False]
    assert (await start(storage, tenant, LATER, kind="ka-7")).created


# --- paging past kept sessions --------------------------------------------------------------------


async def test_retention_pages_past_more_than_a_step_of_sold_and_counted_sessions(
    storage: Any, tenant: Tenant
) -> None:
    """Oldest first: 100 sold sessions (MongoDB walks past them, `_unbilled`), then 101 a limit
    counts, then 120 that may go (more than one step of 100). All 120 go, none of the others,
    and a second run finds nothing. Fails if `expired_sessions` ever filled a step with kept
    sessions (retention stops early, or deletes them), or if a step of kept ones were read
    again and again (the run spins: RETENTION_TIMEOUT_SECONDS; on memory, whose steps never
    suspend, it hangs instead)."""
    tenant = await with_plans(storage, tenant, Plan("free", default=True, limits=FREE))
    sold = [await ended(storage, tenant, n / 10, subject_id=f"s{n}") for n in range(100)]
    await storage.sales.add(tenant.id, [a_sale(f"sale-{s.id}", s.id) for s in sold])
    counted = [await ended(storage, tenant, 20 + n / 10, **practice(f"p{n}")) for n in range(101)]
    doomed = [await ended(storage, tenant, 40 + n / 10, subject_id=f"w{n}") for n in range(120)]

    assert (await retention(storage, tenant)).sessions == 120

    assert await storage.sessions.existing(tenant.id, [s.id for s in doomed]) == set()
    kept = [s.id for s in sold + counted]
    assert await storage.sessions.existing(tenant.id, kept) == set(kept)
    assert (await retention(storage, tenant)).sessions == 0


# --- plans changed between runs -------------------------------------------------------------------


async def test_each_run_keeps_what_the_plans_name_at_that_run(storage: Any, tenant: Tenant) -> None:
    """Run 1 keeps ana's practice and mock exam; the free plan then names mock exams only: run 2
    deletes the practice; then it names nothing: run 3 deletes the mock exam (every kind: the
    stores' `NOT IN` of an empty set). Fails if the kinds were read once and kept (a singleton,
    a cache), or if an empty set of kinds kept everything or broke the statement."""
    tenant = await with_plans(storage, tenant, Plan("free", default=True, limits=FREE))
    practised = await ended(storage, tenant, 0, **practice())
    mock = await ended(storage, tenant, 10, **practice(kind="mock_exam"))

    assert (await retention(storage, tenant)).sessions == 0
    mocks_only = PlanLimits(sessions_per_resource=2, session_kinds=frozenset({"mock_exam"}))
    await storage.plans.put(tenant.id, Plan("free", default=True, limits=mocks_only))
    assert (await retention(storage, tenant, LATER + timedelta(days=1))).sessions == 1
    assert await gone(storage, tenant, practised, mock) == [True, False]
    await storage.plans.put(tenant.id, Plan("free", default=True, limits=PlanLimits(2)))
    assert (await retention(storage, tenant, LATER + timedelta(days=2))).sessions == 1
    assert await gone(storage, tenant, mock) == [True]


# --- a start racing retention ---------------------------------------------------------------------


async def test_a_start_for_the_last_slot_racing_retention_counts_the_kept_session(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    """Ana used 1 of 2 on pdf-1 (ended 40 days ago) and watched a webinar. Retention and two
    starts at once: retention deletes the webinar only, and exactly one start is admitted.
    Fails if retention deleted the counted session before the starts counted (deterministic
    on memory, where retention runs first; a chance on the others)."""
    tenant = await with_plans(storage, tenant, Plan("free", default=True, limits=FREE))
    used = await ended(storage, tenant, 0, **practice())
    webinar = await ended(storage, tenant, 10, subject_id="ana")

    async def retaining(s: Any) -> Deleted:
        applied: Deleted = (
            await wired(s, FakeClock(LATER))
            .jobs()
            .apply_retention()(ApplyRetentionCommand(tenant.name))
        )
        return applied

    def starting(s: Any) -> Any:
        return start(s, tenant, LATER)

    outcomes = await race(retaining, starting, starting, return_exceptions=True)

    deleted, *starts = outcomes
    assert isinstance(deleted, Deleted) and (deleted.sessions, deleted.failures) == (1, [])
    assert sorted(type(o).__name__ for o in starts) == ["StartedSession", "TrialExhausted"]
    assert await gone(storage, tenant, webinar, used) == [True, False]
    assert await storage.sessions.count_started(tenant.id, "ana", "pdf-1", FREE.session_kinds) == 2


# --- what the trial status and the trial report read after retention -----------------------------


async def test_the_trial_status_and_report_read_the_same_after_retention(
    storage: Any, tenant: Tenant
) -> None:
    """Ana and ben practised (ana twice, and she watched a webinar; ben once, then bought the
    pass): the trial report of those days and their trial status are what they were before
    retention deleted the webinar. Fails if a session the report or the status reads went."""
    tenant = await with_plans(
        storage,
        tenant,
        Plan("free", default=True, limits=FREE),
        Plan("pass", limits=PlanLimits(10, FREE.session_kinds)),
    )
    for m in (0, 10):
        await ended(storage, tenant, m, **practice())
    await ended(storage, tenant, 20, subject_id="ana")
    await ended(storage, tenant, 30, **practice("ben"))
    await storage.subscriptions.put(
        tenant.id, Subscription("ben", "pass", LATER + timedelta(days=90)), at(60)
    )
    query = ReportTrialsQuery(tenant.id, T0 - timedelta(days=1), T0 + timedelta(days=1))

    async def read() -> tuple[TrialUse, TrialStatus, TrialStatus]:
        report: TrialReport = (
            await wired(storage, FakeClock(LATER)).use_cases().report_trials()(query)
        )
        return (
            report.use,
            await status(storage, tenant, LATER),
            await status(storage, tenant, LATER, "ben"),
        )

    before = await read()
    assert before == (
        TrialUse(subjects=2, sessions=3, conversions=1),
        TrialStatus("pdf-1", True, 2, 0),
        TrialStatus("pdf-1", False, 1, 9),
    )

    assert (await retention(storage, tenant)).sessions == 1

    assert await read() == before


# --- resource deletion and subject erasure, as before ---------------------------------------------


async def test_deleting_a_resource_still_deletes_its_counted_sessions(
    storage: Any, tenant: Tenant
) -> None:
    """An admin's deletion of pdf-1 takes ana's trial sessions on it (her trial there starts
    over: accepted), and leaves her practice on pdf-2. Fails if resource deletion had taken
    retention's rule."""
    tenant = await with_plans(storage, tenant, Plan("free", default=True, limits=FREE))
    for m in (0, 10):
        await ended(storage, tenant, m, **practice())
    other = await ended(storage, tenant, 20, **practice(resource="pdf-2"))

    deleted = (
        await wired(storage).use_cases().delete_resource()(DeleteResourceCommand(tenant, "pdf-1"))
    )

    assert (deleted.sessions, deleted.erased) == (2, Erased())
    assert await status(storage, tenant, LATER) == TrialStatus("pdf-1", True, 0, 2)
    assert (await start(storage, tenant, LATER)).created
    assert await gone(storage, tenant, other) == [False]


async def test_erasing_a_subject_still_erases_her_counted_sessions(
    storage: Any, tenant: Tenant
) -> None:
    """Ana's erasure puts a pseudonym on both her trial sessions; under her id the trial reads
    unused (accepted: she asked to be forgotten). Fails if erasure had skipped counted
    sessions."""
    tenant = await with_plans(storage, tenant, Plan("free", default=True, limits=FREE))
    practised = [await ended(storage, tenant, m, **practice()) for m in (0, 10)]

    erased = await wired(storage).use_cases().erase_subject()(EraseSubjectCommand(tenant, "ana"))

    assert erased.sessions == 2
    for session in practised:
        stored = await storage.sessions.get(tenant.id, session.id)
        assert stored is not None and is_pseudonym(stored.subject_id)
    assert await status(storage, tenant, LATER) == TrialStatus("pdf-1", True, 0, 2)
