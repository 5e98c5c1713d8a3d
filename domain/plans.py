"""Plans and trials: how many sessions a subject may start, and how many resources it may add.

A subject is on the plan of its active subscription, or else on the tenant's default plan; a
tenant without plans limits nothing. A session counts toward a limit when it starts.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from domain.calendar import Bucket
from domain.erasure import is_pseudonym
from domain.errors import DomainError, InvalidInput
from domain.session import KIND_PATTERN, Session
from domain.text import check_text

PLAN_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}\Z")  # with .match; \Z, since $ takes a final \n
# More sessions or resources than anyone uses, far inside what every store's integers hold.
MAX_LIMIT = 10**9


@dataclass(frozen=True)
class PlanLimits:
    sessions_per_resource: int | None = None
    session_kinds: frozenset[str] = frozenset()
    resources_per_month: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "session_kinds", frozenset(self.session_kinds))
        for name in ("sessions_per_resource", "resources_per_month"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= MAX_LIMIT:
                raise InvalidInput(f"limits.{name}", f"must be 0-{MAX_LIMIT}, or null")
        for kind in self.session_kinds:
            if not KIND_PATTERN.match(kind):
                raise InvalidInput("limits.session_kinds", f"{kind!r} is not a session kind")


@dataclass(frozen=True)
class Plan:
    id: str
    default: bool = False
    unlimited: bool = False
    limits: PlanLimits = field(default_factory=PlanLimits)

    def __post_init__(self) -> None:
        if not PLAN_ID.match(self.id):
            raise InvalidInput("plan_id", "1-64 characters of A-Z a-z 0-9 _ . -")

    def sessions_limit(self) -> int | None:
        """How many sessions of the kinds it names a subject may start per resource, all those
        kinds counted together (None: no limit)."""
        return None if self.unlimited else self.limits.sessions_per_resource

    def session_limit(self, kind: str) -> int | None:
        """How many sessions of `kind` a subject may start per resource (None: no limit, as for
        every kind the plan does not name)."""
        return self.sessions_limit() if kind in self.limits.session_kinds else None

    def resource_limit(self) -> int | None:
        return None if self.unlimited else self.limits.resources_per_month


def named_kinds(plans: Iterable[Plan]) -> frozenset[str]:
    """The kinds some plan names."""
    return frozenset().union(*(plan.limits.session_kinds for plan in plans))


def counted_kinds(plans: Iterable[Plan]) -> frozenset[str]:
    """The kinds some plan's limit counts: a subject's sessions of them count toward it (under
    whichever of these plans it is on, now or later)."""
    return named_kinds(plan for plan in plans if plan.sessions_limit() is not None)


def counted_by_a_limit(session: Session, counted: frozenset[str]) -> bool:
    """Whether a limit may count the session: a subject's, of a kind in `counted` (see
    counted_kinds). Not an erased subject's: no start is counted against a pseudonym."""
    subject = session.subject_id
    return session.kind in counted and subject is not None and not is_pseudonym(subject)


@dataclass(frozen=True)
class Subscription:
    subject_id: str
    plan_id: str
    ends_at: datetime
    starts_at: datetime | None = None

    def __post_init__(self) -> None:
        check_text("subject_id", self.subject_id, 200)
        if self.starts_at is not None and self.starts_at >= self.ends_at:
            raise InvalidInput("ends_at", "must be after starts_at")

    def active_at(self, at: datetime) -> bool:
        return (self.starts_at is None or self.starts_at <= at) and at < self.ends_at


@dataclass(frozen=True)
class SubscriptionSet:
    """One entry of a subject's subscription history: the subscription put as the subject's
    `number`-th (from 1), at `set_at`. The highest number is the subject's current
    subscription; the others were replaced (an entry stays whether or not it ever applied)."""

    subscription: Subscription
    set_at: datetime
    number: int


@dataclass(frozen=True)
class Registration:
    """A resource a subject added (a PDF uploaded), counted against its monthly quota."""

    subject_id: str
    resource_id: str
    kind: str
    registered_at: datetime


@dataclass(frozen=True)
class MonthlyQuota:
    """A plan's resources a month, and the month they are counted in: a calendar month of the
    tenant's time zone."""

    limit: int
    month: Bucket


@dataclass(frozen=True)
class SessionLimit:
    """At most `limit` sessions of these kinds by this subject on this resource, ever."""

    subject_id: str
    resource_id: str
    kinds: frozenset[str]
    limit: int

    def admit(self, started: int) -> None:
        """A subject who has started `started` such sessions may start one more while that is
        fewer than the limit: a limit of 2 allows two sessions, and the third start is refused
        (SessionLimitReached) without storing it."""
        if sessions_remaining(self.limit, started) == 0:
            raise SessionLimitReached(started)


def sessions_remaining(limit: int, started: int) -> int:
    """How many more sessions a limit of `limit` allows after `started` (never below zero)."""
    return max(0, limit - started)


def resources_remaining(monthly_limit: int, registered: int) -> int:
    """How many more resources a quota of `monthly_limit` a month allows after `registered`
    this calendar month (never below zero)."""
    return max(0, monthly_limit - registered)


def can_register_resource(monthly_limit: int | None, registered: int) -> bool:
    """Whether a subject who has added `registered` resources this calendar month may add one
    more (None: no quota): what admit_resource decides, asked without registering."""
    return monthly_limit is None or resources_remaining(monthly_limit, registered) > 0


def admit_resource(monthly_limit: int, registered: int) -> None:
    """A subject who has added `registered` resources this calendar month (UTC) may add one
    more while that is fewer than its plan's resources a month; at the quota the resource is
    refused (QuotaExceeded) without registering it."""
    if not can_register_resource(monthly_limit, registered):
        raise QuotaExceeded(monthly_limit, registered)


@dataclass(frozen=True)
class TrialStatus:
    resource_id: str
    is_free_trial: bool
    sessions_used: int
    sessions_remaining: int | None

    @property
    def can_start_session(self) -> bool:
        return self.sessions_remaining is None or self.sessions_remaining > 0

    @property
    def requires_upgrade(self) -> bool:
        return not self.can_start_session


class SessionLimitReached(DomainError):
    """A store refused a session because its limit was reached (`used` sessions exist)."""

    def __init__(self, used: int) -> None:
        super().__init__(f"{used} sessions already started")
        self.used = used


class TrialExhausted(DomainError):
    def __init__(self, status: TrialStatus, upgrade_url: str | None) -> None:
        super().__init__(
            f"the free trial allows {status.sessions_used} sessions on {status.resource_id}; "
            "upgrade to continue"
        )
        self.status = status
        self.upgrade_url = upgrade_url


class QuotaExceeded(DomainError):
    def __init__(self, limit: int, used: int) -> None:
        super().__init__(f"the plan allows {limit} resources a month; {used} are registered")
        self.limit = limit
        self.used = used


def trial_status(
    resource_id: str, plan: Plan | None, subscribed: bool, sessions_used: int
) -> TrialStatus:
    """Where a subject stands on a resource: a free trial is a limited plan it did not buy."""
    limit = None if plan is None else plan.sessions_limit()
    remaining = None if limit is None else sessions_remaining(limit, sessions_used)
    return TrialStatus(resource_id, limit is not None and not subscribed, sessions_used, remaining)
