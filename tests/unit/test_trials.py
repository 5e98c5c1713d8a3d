"""Plans, subscriptions, trials and quotas: what a subject may start and register."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from adapters.memory.storage import MemoryStorage
from application.remembered import TTL
from application.trials.get_limits import GetLimitsQuery
from application.trials.get_trial_status import GetTrialStatus, GetTrialStatusQuery
from application.trials.register_resource import RegisterResource, RegisterResourceCommand
from application.trials.set_plan import SetPlanCommand
from application.trials.subscribe import Subscribe, SubscribeCommand
from domain.errors import InvalidInput
from domain.plans import (
    Plan,
    PlanLimits,
    QuotaExceeded,
    SessionLimit,
    SessionLimitReached,
    Subscription,
    TrialExhausted,
    admit_resource,
    can_register_resource,
    resources_remaining,
)
from domain.plans import trial_status as status_on
from domain.tenants import Tenant
from entrypoints.container.use_cases import UseCaseContainer
from tests.fakes import FakeClock
from tests.unit.conftest import Starter, TenantMaker

pytestmark = pytest.mark.anyio

DAY = 24 * 3600
FREE = Plan(
    "free",
    default=True,
    limits=PlanLimits(
        sessions_per_resource=2, session_kinds=frozenset({"practice"}), resources_per_month=1
    ),
)
PASS = Plan("pass", unlimited=True)


def test_a_plan_limits_only_the_kinds_it_names() -> None:
    assert FREE.session_limit("practice") == 2
    assert FREE.session_limit("webinar") is None
    assert PASS.session_limit("practice") is None and PASS.resource_limit() is None


def test_a_plans_session_limit_is_one_number_for_all_the_kinds_it_names() -> None:
    both = Plan("both", limits=PlanLimits(2, frozenset({"practice", "mock"})))
    assert both.sessions_limit() == both.session_limit("mock") == both.session_limit("practice")
    assert PASS.sessions_limit() is None
    # The trial status reports the same limit the start is refused at.
    assert status_on("set-1", both, False, 1).sessions_remaining == 1
    assert status_on("set-1", PASS, True, 5).sessions_remaining is None
    assert status_on("set-1", None, False, 5).sessions_remaining is None


def test_a_limit_of_two_sessions_admits_a_second_and_refuses_a_third() -> None:
    limit = SessionLimit("u1", "pdf-1", frozenset({"practice"}), 2)
    limit.admit(1)
    with pytest.raises(SessionLimitReached) as reached:
        limit.admit(2)
    assert reached.value.used == 2


def test_a_quota_of_one_resource_a_month_admits_the_first_and_refuses_the_second() -> None:
    admit_resource(1, 0)
    with pytest.raises(QuotaExceeded) as exceeded:
        admit_resource(1, 1)
    assert (exceeded.value.limit, exceeded.value.used) == (1, 1)


def test_a_quota_leaves_what_is_not_registered_yet_and_never_less_than_nothing() -> None:
    assert [resources_remaining(2, n) for n in range(4)] == [2, 1, 0, 0]
    # What the limits report says agrees with what registering decides.
    for registered in range(4):
        try:
            admit_resource(2, registered)
            admitted = True
        except QuotaExceeded:
            admitted = False
        assert can_register_resource(2, registered) is admitted
    assert can_register_resource(None, 10**6)


def test_a_subscription_is_active_from_its_start_until_before_its_end() -> None:
    ends = datetime(2027, 3, 1, tzinfo=UTC)
    subscription = Subscription("u1", "pass", ends, starts_at=ends - timedelta(days=30))
    assert subscription.active_at(ends - timedelta(seconds=1))
    assert not subscription.active_at(ends)
    assert not subscription.active_at(ends - timedelta(days=31))
    with pytest.raises(InvalidInput):
        Subscription("u1", "pass", ends, starts_at=ends)


@pytest.fixture
async def plans(use_cases: UseCaseContainer, tenant: Tenant) -> None:
    for plan in (FREE, PASS):
        await use_cases.set_plan()(SetPlanCommand(tenant.id, plan))


@pytest.fixture
def trial_status(use_cases: UseCaseContainer) -> GetTrialStatus:
    return use_cases.get_trial_status()


@pytest.fixture
def subscribe(use_cases: UseCaseContainer) -> Subscribe:
    return use_cases.subscribe()


async def test_the_trial_ends_after_its_sessions_with_the_status_and_where_to_upgrade(
    start: Starter, make_tenant: TenantMaker, use_cases: UseCaseContainer
) -> None:
    shop = await make_tenant("shop", upgrade_url="https://example.com/upgrade")
    await use_cases.set_plan()(SetPlanCommand(shop.id, FREE))
    for _ in range(2):
        await start(tenant=shop, kind="practice", resource_id="set-1")

    with pytest.raises(TrialExhausted) as refused:
        await start(tenant=shop, kind="practice", resource_id="set-1")

    status = refused.value.status
    assert (status.sessions_used, status.sessions_remaining, status.requires_upgrade) == (
        2,
        0,
        True,
    )
    assert refused.value.upgrade_url == "https://example.com/upgrade"


@pytest.mark.usefixtures("plans")
async def test_the_trial_counts_per_resource_and_kind_and_at_the_start(
    start: Starter, trial_status: GetTrialStatus, tenant: Tenant
) -> None:
    await start(kind="practice", resource_id="set-1")  # still running, yet it counts

    status = await trial_status(GetTrialStatusQuery(tenant.id, "u1", "set-1"))

    assert (status.is_free_trial, status.sessions_used, status.sessions_remaining) == (True, 1, 1)
    assert status.can_start_session
    await start(kind="practice", resource_id="set-1")
    # Other resources, other kinds and other subjects count apart: none of these is refused.
    await start(kind="practice", resource_id="set-2")
    await start(kind="webinar", resource_id="set-1")
    await start(kind="practice", resource_id="set-1", subject_id="u2")


@pytest.mark.usefixtures("plans")
async def test_a_subscriber_is_unlimited_until_the_subscription_ends(
    start: Starter, subscribe: Subscribe, clock: FakeClock, tenant: Tenant
) -> None:
    subscription = Subscription("u1", "pass", clock.now() + timedelta(days=30))
    await subscribe(SubscribeCommand(tenant.id, subscription))
    for _ in range(3):
        await start(kind="practice", resource_id="set-1")

    clock.advance(30 * DAY)  # the exam is over: back on the free plan, whose slots are used

    with pytest.raises(TrialExhausted):
        await start(kind="practice", resource_id="set-1")


@pytest.mark.usefixtures("plans")
async def test_a_subscription_needs_a_known_plan_and_an_end_with_an_offset(
    subscribe: Subscribe, tenant: Tenant
) -> None:
    with pytest.raises(InvalidInput) as refused:
        gold = Subscription("u1", "gold", datetime(2027, 1, 1, tzinfo=UTC))
        await subscribe(SubscribeCommand(tenant.id, gold))
    assert refused.value.field == "plan_id"
    with pytest.raises(InvalidInput) as refused:
        naive = Subscription("u1", "pass", datetime(2027, 1, 1))
        await subscribe(SubscribeCommand(tenant.id, naive))
    assert refused.value.field == "ends_at"


async def test_a_tenant_without_plans_limits_nothing(
    start: Starter, trial_status: GetTrialStatus, tenant: Tenant
) -> None:
    for _ in range(5):
        await start(kind="practice", resource_id="set-1")
    status = await trial_status(GetTrialStatusQuery(tenant.id, "u1", "set-1"))
    assert (status.is_free_trial, status.sessions_remaining) == (False, None)


@pytest.fixture
def register(use_cases: UseCaseContainer) -> RegisterResource:
    return use_cases.register_resource()


@pytest.mark.usefixtures("plans")
async def test_resources_are_limited_per_calendar_month_and_a_replay_is_free(
    register: RegisterResource,
    use_cases: UseCaseContainer,
    clock: FakeClock,
    tenant: Tenant,
) -> None:
    limits = use_cases.get_limits()
    pdf_1 = RegisterResourceCommand(tenant.id, "u1", "pdf-1", "practice")
    pdf_2 = RegisterResourceCommand(tenant.id, "u1", "pdf-2", "practice")
    assert (await register(pdf_1)).created is True
    assert (await register(pdf_1)).created is False

    with pytest.raises(QuotaExceeded) as refused:
        await register(pdf_2)
    assert (refused.value.limit, refused.value.used) == (1, 1)
    now = await limits(GetLimitsQuery(tenant.id, "u1"))
    assert (now.plan_id, now.resources_this_month, now.can_register_resource) == ("free", 1, False)

    clock.advance(7 * DAY)  # 1 December
    assert (await register(pdf_2)).created is True


@pytest.mark.parametrize(
    ("resource_id", "kind", "field"),
    [("", "practice", "resource_id"), ("pdf-1", "Practice", "kind")],
)
async def test_a_resource_needs_an_id_and_a_kind(
    register: RegisterResource, tenant: Tenant, resource_id: str, kind: str, field: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        await register(RegisterResourceCommand(tenant.id, "u1", resource_id, kind))
    assert refused.value.field == field


@pytest.mark.usefixtures("plans")
async def test_limits_show_the_subscription_and_its_end(
    subscribe: Subscribe,
    use_cases: UseCaseContainer,
    clock: FakeClock,
    tenant: Tenant,
) -> None:
    ends = clock.now() + timedelta(days=30)
    await subscribe(SubscribeCommand(tenant.id, Subscription("u1", "pass", ends)))

    limits = await use_cases.get_limits()(GetLimitsQuery(tenant.id, "u1"))

    assert (limits.plan_id, limits.unlimited, limits.subscription_ends_at) == ("pass", True, ends)
    assert limits.sessions_per_resource is None and limits.can_register_resource


async def test_a_plan_set_here_limits_the_next_start_at_once(
    start: Starter, use_cases: UseCaseContainer, tenant: Tenant
) -> None:
    await start(kind="practice", resource_id="pdf-1")  # the tenant's plans are remembered: none
    await use_cases.set_plan()(SetPlanCommand(tenant.id, replace(FREE, limits=replace(
        FREE.limits, sessions_per_resource=1))))  # fmt: skip

    with pytest.raises(TrialExhausted):
        await start(kind="practice", resource_id="pdf-1")


async def test_a_plan_set_by_another_process_reaches_this_one_when_its_memory_expires(
    start: Starter, storage: MemoryStorage, tenant: Tenant, clock: FakeClock
) -> None:
    await start(kind="practice", resource_id="pdf-1")  # remembered: no plans
    await storage.plans.put(tenant.id, replace(FREE, limits=replace(
        FREE.limits, sessions_per_resource=1)))  # fmt: skip
    await start(kind="practice", resource_id="pdf-1")  # not limited yet: within the TTL
    clock.advance(TTL.total_seconds())

    with pytest.raises(TrialExhausted):
        await start(kind="practice", resource_id="pdf-1")
