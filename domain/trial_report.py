"""The trial report's rules: which sessions are free-trial sessions, which subjects converted,
and the figures made of them.

Stores count these where the data lives (SQL, aggregation pipelines); the functions here state
the rules, and the in-memory store uses them directly.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from domain.plans import Plan, SubscriptionSet
from domain.refusals import Refusal


@dataclass(frozen=True)
class FreeTrial:
    """What the tenant's plans make a free trial (`domain.plans.trial_status`: a limit from a
    plan the subject did not subscribe to, which is the default plan): sessions of the kinds
    the default plan limits, by subjects with no subscription in force to one of the tenant's
    plans. A subscription to any of them other than the default is a paid one."""

    default_plan: str
    kinds: frozenset[str]
    plans: frozenset[str]  # every plan the tenant defines

    @classmethod
    def of(cls, plans: Iterable[Plan]) -> "FreeTrial | None":
        """None when no session can be a trial one: the tenant has no default plan, or its
        default plan limits no sessions."""
        plans = list(plans)
        default = next((p for p in plans if p.default), None)
        if default is None or default.sessions_limit() is None or not default.limits.session_kinds:
            return None
        return cls(default.id, default.limits.session_kinds, frozenset(p.id for p in plans))

    @property
    def paid_plans(self) -> frozenset[str]:
        return self.plans - {self.default_plan}

    def counts(self, kind: str, started_at: datetime, in_force: SubscriptionSet | None) -> bool:
        """Whether a subject's session of `kind` started at `started_at` is a trial session,
        given the subscription in force then (`in_force_at`)."""
        if kind not in self.kinds:
            return False
        return in_force is None or not (
            in_force.subscription.active_at(started_at)
            and in_force.subscription.plan_id in self.plans
        )

    def converts(self, entry: SubscriptionSet, first_trial_session: datetime) -> bool:
        """Whether a subscription set is the subject's conversion: to a paid plan, set after
        the subject's first trial session of the window (whenever since)."""
        return entry.set_at > first_trial_session and entry.subscription.plan_id in self.paid_plans


def in_force_at(history: Iterable[SubscriptionSet], at: datetime) -> SubscriptionSet | None:
    """The subscription in force at `at`: the last one set at or before it (a start late by the
    late-data window may have been decided on one set after it; the report ignores that)."""
    earlier = [entry for entry in history if entry.set_at <= at]
    return max(earlier, key=lambda entry: entry.number, default=None)


@dataclass(frozen=True)
class TrialUse:
    """The window's trial sessions: by how many subjects, and how many of them converted."""

    subjects: int = 0
    sessions: int = 0
    conversions: int = 0


@dataclass(frozen=True)
class RefusalTally:
    """Refused starts of the days a window touches: per reason, and how many distinct subjects
    were refused for an exhausted trial."""

    starts: Mapping[Refusal, int] = field(default_factory=dict)
    subjects_exhausted: int = 0

    def of(self, reason: Refusal) -> int:
        return self.starts.get(reason, 0)


@dataclass(frozen=True)
class TrialReport:
    start: datetime
    end: datetime
    use: TrialUse
    refusals: RefusalTally

    @property
    def avg_sessions_per_subject(self) -> float | None:
        """None when the window has no trial subject."""
        return _ratio(self.use.sessions, self.use.subjects)

    @property
    def conversion_rate(self) -> float | None:
        """Conversions per trial subject; None when the window has no trial subject."""
        return _ratio(self.use.conversions, self.use.subjects)


def _ratio(part: int, whole: int) -> float | None:
    # Three decimals: a figure for people, the same from every store.
    return round(part / whole, 3) if whole else None
