"""The trial report's rules: refusal days, what a free trial is, the subscription in force, and
the report's window."""

from datetime import UTC, date, datetime, timedelta

import pytest

from application.trials.report_trials import ReportTrialsQuery
from domain.calendar import Calendar, Period
from domain.errors import InvalidInput
from domain.plans import Plan, PlanLimits, Subscription, SubscriptionSet
from domain.refusals import Refusal, RefusedStart, days_of
from domain.trial_report import FreeTrial, RefusalTally, TrialReport, TrialUse, in_force_at
from entrypoints.container.use_cases import UseCaseContainer
from tests.fakes import FakeClock

pytestmark = pytest.mark.anyio

T = datetime(2026, 12, 1, 23, 30, tzinfo=UTC)
LIMITED = PlanLimits(sessions_per_resource=2, session_kinds=frozenset({"practice"}))
FREE = Plan("free", default=True, limits=LIMITED)
PASS = Plan("pass", unlimited=True)
UTC_DAYS = Calendar()
SEOUL = Calendar("Asia/Seoul")


def test_a_refusal_counts_on_its_local_day_and_a_window_touches_whole_days() -> None:
    refused = Refusal.TRIAL_EXHAUSTED
    assert RefusedStart.at(T, "ana", "practice", refused, UTC_DAYS).day == date(2026, 12, 1)
    assert RefusedStart.at(T, "ana", "practice", refused, SEOUL).day == date(2026, 12, 2)
    midnight = datetime(2026, 12, 3, tzinfo=UTC)
    assert days_of(T, midnight, UTC_DAYS) == (date(2026, 12, 1), date(2026, 12, 2))  # exclusive
    assert days_of(T, T + timedelta(minutes=1), UTC_DAYS) == (date(2026, 12, 1), date(2026, 12, 1))
    assert days_of(T, midnight, SEOUL) == (date(2026, 12, 2), date(2026, 12, 3))


def test_a_free_trial_needs_a_default_plan_that_limits_sessions() -> None:
    assert FreeTrial.of([FREE, PASS]) == FreeTrial(
        "free", LIMITED.session_kinds, frozenset({"free", "pass"})
    )
    assert FreeTrial.of([PASS]) is None
    assert FreeTrial.of([Plan("free", default=True, unlimited=True, limits=LIMITED)]) is None
    assert (
        FreeTrial.of([Plan("free", default=True, limits=PlanLimits(resources_per_month=1))]) is None
    )


def entry(number: int, set_at: datetime, plan: str = "pass", **dates: datetime) -> SubscriptionSet:
    ends = dates.get("ends_at", T + timedelta(days=30))
    return SubscriptionSet(Subscription("ana", plan, ends, dates.get("starts_at")), set_at, number)


def test_the_subscription_in_force_is_the_last_set_and_must_be_active() -> None:
    trial = FreeTrial.of([FREE, PASS])
    assert trial is not None
    active, ended = entry(1, T - timedelta(days=2)), entry(2, T - timedelta(days=1), ends_at=T)
    later = entry(3, T + timedelta(hours=1))

    assert in_force_at([active, ended, later], T) == ended
    assert in_force_at([later], T) is None
    assert trial.counts("practice", T, ended) and trial.counts("practice", T, None)
    assert not trial.counts("practice", T, active)
    assert not trial.counts("webinar", T, None)  # a kind the plan does not limit
    assert trial.counts("practice", T, entry(1, T, plan="gone"))  # no such plan: free again
    assert trial.converts(later, T) and not trial.converts(active, T)
    assert not trial.converts(entry(3, T + timedelta(hours=1), plan="free"), T)


def test_averages_are_null_without_trial_subjects() -> None:
    empty = TrialReport(T, T, TrialUse(), RefusalTally())
    some = TrialReport(T, T, TrialUse(subjects=3, sessions=5, conversions=1), RefusalTally())

    assert (empty.avg_sessions_per_subject, empty.conversion_rate) == (None, None)
    assert (some.avg_sessions_per_subject, some.conversion_rate) == (1.667, 0.333)


async def test_the_window_is_the_last_30_local_days_unless_asked(
    use_cases: UseCaseContainer, clock: FakeClock
) -> None:
    report_trials = use_cases.report_trials()
    now = clock.now()
    today = SEOUL.bucket(Period.DAY, now)

    default = await report_trials(ReportTrialsQuery("acme", calendar=SEOUL))
    until = await report_trials(ReportTrialsQuery("acme", end=today.start, calendar=SEOUL))
    since = await report_trials(
        ReportTrialsQuery("acme", start=now - timedelta(days=2), calendar=SEOUL)
    )

    assert (default.start, default.end) == (today.end - timedelta(days=30), today.end)
    assert default.start.astimezone(SEOUL.zone).hour == 0
    assert (until.start, until.end) == (today.start - timedelta(days=30), today.start)
    assert (since.start, since.end) == (now - timedelta(days=2), today.end)
    with pytest.raises(InvalidInput) as backwards:
        await report_trials(ReportTrialsQuery("acme", start=now, end=now))
    assert backwards.value.field == "from"
