"""The bodies of trials: plans, subscriptions, resources, limits and trial status."""

from datetime import datetime
from typing import Annotated

import msgspec

from application.trials.get_limits import Limits
from domain.plans import MAX_LIMIT, Plan, Subscription, SubscriptionSet, TrialStatus
from entrypoints.http.schemas.common import Timestamp

PlanLimit = Annotated[int, msgspec.Meta(ge=0, le=MAX_LIMIT)] | None  # null: no limit


class PlanLimitsBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    sessions_per_resource: PlanLimit = None
    session_kinds: list[str] = []
    resources_per_month: PlanLimit = None


class PlanBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    default: bool = False
    unlimited: bool = False
    limits: PlanLimitsBody = msgspec.field(default_factory=PlanLimitsBody)


class PlanOut(msgspec.Struct):
    plan_id: str
    default: bool
    unlimited: bool
    limits: PlanLimitsBody

    @classmethod
    def of(cls, plan: Plan) -> "PlanOut":
        limits = PlanLimitsBody(
            sessions_per_resource=plan.limits.sessions_per_resource,
            session_kinds=sorted(plan.limits.session_kinds),
            resources_per_month=plan.limits.resources_per_month,
        )
        return cls(plan.id, plan.default, plan.unlimited, limits)


class SubscriptionBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    plan_id: str
    ends_at: Timestamp
    starts_at: Timestamp | None = None


class SubscriptionOut(msgspec.Struct):
    subject_id: str
    plan_id: str
    starts_at: datetime | None
    ends_at: datetime

    @classmethod
    def of(cls, s: Subscription) -> "SubscriptionOut":
        return cls(s.subject_id, s.plan_id, s.starts_at, s.ends_at)


class SubscriptionSetOut(SubscriptionOut):
    """A subscription of a subject's history: when it was set, and its place in the history
    (1 for the first; the highest is the current subscription)."""

    set_at: datetime
    number: int

    @classmethod
    def of_entry(cls, entry: SubscriptionSet) -> "SubscriptionSetOut":
        s = entry.subscription
        return cls(s.subject_id, s.plan_id, s.starts_at, s.ends_at, entry.set_at, entry.number)


class LimitsOut(msgspec.Struct):
    plan_id: str | None
    unlimited: bool
    sessions_per_resource: int | None
    resources_per_month: int | None
    resources_this_month: int
    can_register_resource: bool
    subscription_ends_at: datetime | None

    @classmethod
    def of(cls, limits: Limits) -> "LimitsOut":
        return cls(
            limits.plan_id,
            limits.unlimited,
            limits.sessions_per_resource,
            limits.resources_per_month,
            limits.resources_this_month,
            limits.can_register_resource,
            limits.subscription_ends_at,
        )


class ResourceBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    resource_id: str
    kind: str


class ResourceOut(msgspec.Struct):
    subject_id: str
    resource_id: str
    kind: str


class TrialStatusOut(msgspec.Struct):
    resource_id: str
    is_free_trial: bool
    sessions_used: int
    sessions_remaining: int | None
    can_start_session: bool
    requires_upgrade: bool

    @classmethod
    def of(cls, t: TrialStatus) -> "TrialStatusOut":
        return cls(
            t.resource_id,
            t.is_free_trial,
            t.sessions_used,
            t.sessions_remaining,
            t.can_start_session,
            t.requires_upgrade,
        )
