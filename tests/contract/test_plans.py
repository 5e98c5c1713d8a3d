"""Plans, subscriptions, resources and the trial limit at start — atomic under concurrency."""

from typing import Any

import pytest

from domain.plans import (
    Plan,
    PlanLimits,
    QuotaExceeded,
    SessionLimit,
    SessionLimitReached,
    Subscription,
    SubscriptionSet,
)
from domain.session import Session
from domain.tenants import Tenant
from tests.contract.builders import a_session, add_tenant, at, month_of, quota, stored_session
from tests.contract.races import Call, Race

pytestmark = pytest.mark.anyio

PRACTICE = frozenset({"practice", "mock_exam"})


def limit(n: int, resource: str = "pdf-1") -> SessionLimit:
    return SessionLimit("user-1", resource, PRACTICE, n)


async def test_with_one_trial_slot_left_exactly_one_of_ten_starts_succeeds(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    await stored_session(storage, tenant, kind="practice", resource_id="pdf-1")
    attempts = [a_session(tenant, kind="mock_exam", resource_id="pdf-1") for _ in range(10)]

    def start(session: Session) -> Call:
        return lambda s: s.sessions.add(session, limit(2))

    results = await race(*(start(a) for a in attempts), return_exceptions=True)

    assert sum(r is True for r in results) == 1
    assert all(isinstance(r, SessionLimitReached) for r in results if r is not True)
    assert {r.used for r in results if r is not True} == {2}
    assert await storage.sessions.count_started(tenant.id, "user-1", "pdf-1", PRACTICE) == 2


async def test_limits_count_only_their_kinds_subject_and_resource(
    storage: Any, tenant: Tenant
) -> None:
    await stored_session(storage, tenant, kind="practice", resource_id="pdf-1")
    await stored_session(storage, tenant, kind="webinar", resource_id="pdf-1")
    await stored_session(storage, tenant, kind="practice", resource_id="pdf-2")
    await stored_session(storage, tenant, kind="practice", resource_id="pdf-1", subject_id="user-2")

    assert await storage.sessions.count_started(tenant.id, "user-1", "pdf-1", PRACTICE) == 1
    assert await storage.sessions.add(
        a_session(tenant, kind="practice", resource_id="pdf-1"), limit(2)
    )
    with pytest.raises(SessionLimitReached):
        await storage.sessions.add(
            a_session(tenant, kind="practice", resource_id="pdf-1"), limit(2)
        )


async def test_a_limit_of_two_admits_the_second_start_and_refuses_the_third(
    storage: Any, tenant: Tenant
) -> None:
    def on(resource_id: str, kind: str = "practice") -> Session:
        return a_session(tenant, kind=kind, resource_id=resource_id)

    with pytest.raises(SessionLimitReached) as none_allowed:
        await storage.sessions.add(on("pdf-2"), limit(0, "pdf-2"))
    assert none_allowed.value.used == 0

    assert await storage.sessions.add(on("pdf-1"), limit(2))
    assert await storage.sessions.add(on("pdf-1", "mock_exam"), limit(2))
    with pytest.raises(SessionLimitReached) as over:
        await storage.sessions.add(on("pdf-1"), limit(2))

    assert over.value.used == 2
    assert await storage.sessions.count_started(tenant.id, "user-1", "pdf-1", PRACTICE) == 2
    assert await storage.sessions.count_started(tenant.id, "user-1", "pdf-2", PRACTICE) == 0


async def test_a_start_under_a_limit_is_a_replay_for_a_taken_id_and_counts_only_its_kinds(
    storage: Any, tenant: Tenant
) -> None:
    first = a_session(tenant, kind="practice", resource_id="pdf-1")
    assert await storage.sessions.add(first, limit(2))
    assert await storage.sessions.add(first.copy(), limit(2)) is False
    # Another limit on the same subject and resource counts its own kinds.
    webinars = SessionLimit("user-1", "pdf-1", frozenset({"webinar"}), 1)
    webinar = a_session(tenant, kind="webinar", resource_id="pdf-1")
    assert await storage.sessions.add(webinar, webinars)
    with pytest.raises(SessionLimitReached):
        await storage.sessions.add(a_session(tenant, kind="webinar", resource_id="pdf-1"), webinars)
    assert await storage.sessions.count_started(tenant.id, "user-1", "pdf-1", PRACTICE) == 1


async def test_a_start_whose_id_is_taken_is_a_replay_even_at_the_limit(
    storage: Any, tenant: Tenant
) -> None:
    # A client's retry of the start that took the last slot (the two racing, both past the use
    # case's look-up) must be told "taken" (a replay), not "limit reached" (a 402).
    first = a_session(tenant, kind="practice", resource_id="pdf-1")
    assert await storage.sessions.add(first, limit(1))

    assert await storage.sessions.add(first.copy(), limit(1)) is False


async def test_one_default_plan_at_a_time(storage: Any, tenant: Tenant) -> None:
    free = Plan("free", default=True, limits=PlanLimits(2, PRACTICE, 1))
    await storage.plans.put(tenant.id, free)
    await storage.plans.put(tenant.id, Plan("pass", unlimited=True))
    await storage.plans.put(tenant.id, Plan("trial", default=True, limits=PlanLimits(1, PRACTICE)))

    plans = {p.id: p for p in await storage.plans.all(tenant.id)}

    assert [p.id for p in plans.values() if p.default] == ["trial"]
    assert plans["free"].limits == free.limits and plans["pass"].unlimited


async def test_of_default_plans_put_at_once_exactly_one_is_the_default_afterwards(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    await storage.plans.put(tenant.id, Plan("free", default=True))
    contenders = [Plan(f"trial-{n}", default=True, limits=PlanLimits(n)) for n in range(8)]

    def put(plan: Plan) -> Call:
        return lambda s: s.plans.put(tenant.id, plan)

    await race(*(put(p) for p in contenders))

    plans = await storage.plans.all(tenant.id)
    assert sorted(p.id for p in plans) == ["free", *(p.id for p in contenders)]
    (default,) = [p for p in plans if p.default]
    assert default in contenders


async def test_a_plan_reads_back_by_id_in_its_tenant_only(storage: Any, tenant: Tenant) -> None:
    limits = PlanLimits(3, frozenset({"practice", "mock"}), 10)
    await storage.plans.put(tenant.id, Plan("free", default=True, limits=limits))
    other = await add_tenant(storage, "globex")
    await storage.plans.put(other.id, Plan("pro", unlimited=True))

    assert await storage.plans.get(tenant.id, "free") == Plan("free", True, False, limits)
    assert await storage.plans.get(tenant.id, "pro") is None
    assert await storage.plans.all(tenant.id) == [Plan("free", True, False, limits)]


async def test_a_subscription_is_replaced_and_the_history_keeps_every_one(
    storage: Any, tenant: Tenant
) -> None:
    first, second = (
        Subscription("user-1", "pass", at(60)),
        Subscription("user-1", "pro", at(120), at(1)),
    )
    await storage.subscriptions.put(tenant.id, first, at(0))
    await storage.subscriptions.put(tenant.id, second, at(1))
    await storage.subscriptions.put(tenant.id, Subscription("user-2", "pass", at(60)), at(2))

    assert await storage.subscriptions.get(tenant.id, "user-1") == second
    assert await storage.subscriptions.get(tenant.id, "user-3") is None
    assert await storage.subscriptions.history(tenant.id, "user-1") == [
        SubscriptionSet(second, at(1), 2),
        SubscriptionSet(first, at(0), 1),
    ]
    assert await storage.subscriptions.history(tenant.id, "user-3") == []
    other = await add_tenant(storage, "globex")
    assert await storage.subscriptions.history(other.id, "user-1") == []


async def test_concurrent_subscriptions_of_one_subject_each_take_a_number_and_the_last_is_current(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    await storage.subscriptions.put(tenant.id, Subscription("user-1", "pass", at(60)), at(0))
    contenders = [Subscription("user-1", f"plan-{n}", at(60 + n)) for n in range(6)]

    def put(subscription: Subscription) -> Call:
        return lambda s: s.subscriptions.put(tenant.id, subscription, at(1))

    await race(*(put(c) for c in contenders))

    history = await storage.subscriptions.history(tenant.id, "user-1")
    assert [h.number for h in history] == [7, 6, 5, 4, 3, 2, 1]
    assert sorted(h.subscription.plan_id for h in history[:-1]) == sorted(
        c.plan_id for c in contenders
    )
    # The current subscription is the one numbered highest.
    assert await storage.subscriptions.get(tenant.id, "user-1") == history[0].subscription


async def test_resources_are_registered_once_and_the_monthly_quota_holds_under_concurrency(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    assert await storage.resources.register(
        tenant.id, "user-1", "pdf-1", "pdf", at(0), quota(2, at(0))
    )
    assert not await storage.resources.register(
        tenant.id, "user-1", "pdf-1", "pdf", at(1), quota(2, at(1))
    )

    def register(resource_id: str) -> Call:
        return lambda s: s.resources.register(
            tenant.id, "user-1", resource_id, "pdf", at(2), quota(2, at(2))
        )

    results = await race(*(register(f"pdf-{n}") for n in range(2, 10)), return_exceptions=True)

    assert sum(r is True for r in results) == 1
    assert all(isinstance(r, QuotaExceeded) for r in results if r is not True)
    assert {(r.limit, r.used) for r in results if r is not True} == {(2, 2)}
    assert await storage.resources.count_in_month(tenant.id, "user-1", month_of(at(3))) == 2
    # At the limit, a resource registered already is just that, not over the quota.
    assert not await storage.resources.register(
        tenant.id, "user-1", "pdf-1", "pdf", at(3), quota(2, at(3))
    )
    assert (
        await storage.resources.count_in_month(tenant.id, "user-1", month_of(at(60 * 24 * 40))) == 0
    )


async def test_a_monthly_quota_of_one_admits_one_resource_and_refuses_the_second(
    storage: Any, tenant: Tenant
) -> None:
    with pytest.raises(QuotaExceeded) as none_allowed:
        await storage.resources.register(
            tenant.id, "user-2", "pdf-1", "pdf", at(0), quota(0, at(0))
        )
    assert (none_allowed.value.limit, none_allowed.value.used) == (0, 0)

    assert await storage.resources.register(
        tenant.id, "user-1", "pdf-1", "pdf", at(0), quota(1, at(0))
    )
    with pytest.raises(QuotaExceeded) as over:
        await storage.resources.register(
            tenant.id, "user-1", "pdf-2", "pdf", at(1), quota(1, at(1))
        )

    assert (over.value.limit, over.value.used) == (1, 1)
    # The next calendar month has its own quota.
    assert await storage.resources.register(
        tenant.id, "user-1", "pdf-2", "pdf", at(60 * 24 * 40), quota(1, at(60 * 24 * 40))
    )
    assert await storage.resources.count_in_month(tenant.id, "user-2", month_of(at(0))) == 0


async def test_a_resource_is_registered_once_per_subject_and_tenant(
    storage: Any, tenant: Tenant
) -> None:
    other = await add_tenant(storage, "globex")

    assert await storage.resources.register(tenant.id, "user-1", "pdf-1", "pdf", at(0), None)
    assert await storage.resources.register(tenant.id, "user-2", "pdf-1", "pdf", at(0), None)
    assert await storage.resources.register(other.id, "user-1", "pdf-1", "pdf", at(0), None)
    assert not await storage.resources.register(other.id, "user-1", "pdf-1", "pdf", at(1), None)
    assert await storage.resources.count_in_month(other.id, "user-1", month_of(at(1))) == 1
