"""The trial report's figures on one data set, the same from every store; refusals counted once
each under concurrency."""

from datetime import date, timedelta
from typing import Any

import pytest

from domain.plans import Plan, PlanLimits, Subscription
from domain.refusals import Refusal, RefusedStart
from domain.tenants import Tenant
from domain.trial_report import FreeTrial, RefusalTally, TrialUse
from tests.contract.builders import add_tenant, at, stored_session
from tests.contract.races import Call, Race

pytestmark = pytest.mark.anyio

DAY = 24 * 60  # minutes
END = at(12 * 60)  # the window: [T0, END)
FAR = at(365 * DAY)
FREE = PlanLimits(sessions_per_resource=2, session_kinds=frozenset({"practice", "mock"}))
PLANS = [
    Plan("free", default=True, limits=FREE),
    Plan("pass", unlimited=True),
    Plan("basic", limits=PlanLimits(sessions_per_resource=10, session_kinds=FREE.session_kinds)),
]
TRIAL = FreeTrial.of(PLANS)
NOV_24, NOV_25 = date(2026, 11, 24), date(2026, 11, 25)  # T0's day and the next


async def subscribe(
    storage: Any, tenant: Tenant, subject: str, plan: str, set_at: float, **dates: Any
) -> None:
    subscription = Subscription(subject, plan, dates.get("ends_at", FAR), dates.get("starts_at"))
    await storage.subscriptions.put(tenant.id, subscription, at(set_at))


async def practice(storage: Any, tenant: Tenant, subject: str | None, minutes: float) -> None:
    await stored_session(
        storage, tenant, minutes, kind="practice", resource_id="pdf-1", subject_id=subject
    )


async def test_trial_sessions_are_those_of_limited_kinds_with_no_subscription_in_force(
    storage: Any, tenant: Tenant
) -> None:
    assert TRIAL is not None
    for plan in PLANS:
        await storage.plans.put(tenant.id, plan)
    # ana: two trial sessions and a webinar (a kind the plan does not limit), then she pays.
    await practice(storage, tenant, "ana", 10)
    await practice(storage, tenant, "ana", 20)
    await stored_session(storage, tenant, 25, kind="webinar", subject_id="ana")
    await subscribe(storage, tenant, "ana", "pass", 30)
    # ben: a mock exam, never pays.
    await stored_session(storage, tenant, 15, kind="mock", resource_id="pdf-2", subject_id="ben")
    # cleo had paid before: her session is no trial one.
    await subscribe(storage, tenant, "cleo", "pass", -60)
    await practice(storage, tenant, "cleo", 40)
    # dan's pass had ended: a trial session; moving to the free plan is no conversion.
    await subscribe(storage, tenant, "dan", "pass", -60, ends_at=at(5))
    await practice(storage, tenant, "dan", 50)
    await subscribe(storage, tenant, "dan", "free", 70)
    # fay's pass was set before her session but starts later: a trial session, and a
    # subscription set before it is no conversion.
    await subscribe(storage, tenant, "fay", "pass", 55, starts_at=at(2 * DAY))
    await practice(storage, tenant, "fay", 60)
    # gus's active pass was replaced by one that had ended: the last one set counts.
    await subscribe(storage, tenant, "gus", "pass", -100)
    await subscribe(storage, tenant, "gus", "pass", -50, ends_at=at(-40))
    await practice(storage, tenant, "gus", 80)
    # Outside the window, anonymous, or another tenant's: not counted.
    await practice(storage, tenant, "eve", -10)
    await subscribe(storage, tenant, "eve", "pass", 100)
    await practice(storage, tenant, "hal", 12 * 60)
    await stored_session(
        storage, tenant, 90, kind="practice", subject_id=None, client_key="browser-1"
    )
    other = await add_tenant(storage, "globex")
    await practice(storage, other, "ana", 10)
    await subscribe(storage, other, "ana", "pass", 30)
    # A paid plan set later counts however long after the window.
    await practice(storage, tenant, "ida", 100)
    await subscribe(storage, tenant, "ida", "basic", 3 * DAY)

    use = await storage.trial_sessions.use(tenant.id, at(0), END, TRIAL)

    # ana, ben, dan, fay, gus, ida; ana and ida converted.
    assert use == TrialUse(subjects=6, sessions=7, conversions=2)


async def test_a_window_without_trial_sessions_counts_nothing(storage: Any, tenant: Tenant) -> None:
    assert TRIAL is not None
    await practice(storage, tenant, "ana", 12 * 60)
    await practice(storage, tenant, "ben", -1)

    assert await storage.trial_sessions.use(tenant.id, at(0), END, TRIAL) == TrialUse()


def refused(subject: str, reason: Refusal, day: date, kind: str = "practice") -> RefusedStart:
    return RefusedStart(subject, kind, reason, day)


async def test_refusals_are_tallied_per_reason_over_the_days_asked(
    storage: Any, tenant: Tenant
) -> None:
    other = await add_tenant(storage, "globex")
    counted = [
        refused("ana", Refusal.TRIAL_EXHAUSTED, NOV_24),
        refused("ana", Refusal.TRIAL_EXHAUSTED, NOV_24),
        refused("ana", Refusal.TRIAL_EXHAUSTED, NOV_25, kind="mock"),
        refused("ben", Refusal.TRIAL_EXHAUSTED, NOV_24),
        refused("cleo", Refusal.QUOTA_EXCEEDED, NOV_24, kind="pdf"),
        *[refused("dan", Refusal.INSUFFICIENT_CREDITS, NOV_25, kind="counseling")] * 3,
    ]
    not_counted = [
        refused("eve", Refusal.TRIAL_EXHAUSTED, NOV_24 - timedelta(days=1)),
        refused("fay", Refusal.TRIAL_EXHAUSTED, NOV_25 + timedelta(days=1)),
    ]
    for refusal in counted + not_counted:
        await storage.refused_starts.record(tenant.id, refusal)
    await storage.refused_starts.record(other.id, refused("gus", Refusal.TRIAL_EXHAUSTED, NOV_24))

    tally = await storage.refused_starts.tally(tenant.id, NOV_24, NOV_25)

    assert tally == RefusalTally(
        {Refusal.TRIAL_EXHAUSTED: 4, Refusal.QUOTA_EXCEEDED: 1, Refusal.INSUFFICIENT_CREDITS: 3},
        subjects_exhausted=2,
    )
    assert await storage.refused_starts.tally(tenant.id, NOV_24, NOV_24) == RefusalTally(
        {Refusal.TRIAL_EXHAUSTED: 3, Refusal.QUOTA_EXCEEDED: 1}, subjects_exhausted=2
    )
    empty = await storage.refused_starts.tally(tenant.id, date(2026, 1, 1), date(2026, 1, 2))
    assert empty == RefusalTally() and empty.of(Refusal.QUOTA_EXCEEDED) == 0


async def test_concurrent_refusals_each_count_once(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    same = refused("ana", Refusal.TRIAL_EXHAUSTED, NOV_24)
    others = [refused(f"user-{n}", Refusal.TRIAL_EXHAUSTED, NOV_24) for n in range(4)]

    def record(refusal: RefusedStart) -> Call:
        return lambda s: s.refused_starts.record(tenant.id, refusal)

    await race(*(record(same) for _ in range(8)), *(record(r) for r in others))

    tally = await storage.refused_starts.tally(tenant.id, NOV_24, NOV_24)
    assert tally == RefusalTally({Refusal.TRIAL_EXHAUSTED: 12}, subjects_exhausted=5)
