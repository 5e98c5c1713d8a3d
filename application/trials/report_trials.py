"""Admins read how free trials go: who used them, who ran out, who paid, what was refused."""

from dataclasses import dataclass, field
from datetime import datetime

from application.ports import Clock, Window
from application.trials.ports import PlanRepository, RefusedStarts, TrialSessions
from domain.calendar import Calendar
from domain.refusals import days_of
from domain.trial_report import FreeTrial, TrialReport, TrialUse

DEFAULT_DAYS = 30


@dataclass(frozen=True)
class ReportTrialsQuery:
    tenant_id: str
    start: datetime | None = None
    end: datetime | None = None
    calendar: Calendar = field(default_factory=Calendar)  # the tenant's


class ReportTrials:
    """How free trials go over a window (`from` inclusive, `to` exclusive, both with an offset;
    by default the last 30 days of the tenant's time zone, today included, or the 30 days
    before `to`'s day, or from `from` to the end of today; `from` must be before `to`).

    A trial session is a session with a subject, of a kind the tenant's default plan limits,
    started while the subject had no subscription in force to one of the tenant's plans (a
    free trial, as the trial status calls it: a limit from a plan the subject did not
    subscribe to). The subscription in force at a start is the last one set at or before it,
    from the subject's subscription history, if the start lies within its dates; plans count
    as they are defined now. Without a default plan that limits sessions there are no trial
    sessions.

    - `trial_subjects`: subjects with at least one trial session started in the window;
      `sessions_used`: those sessions; `avg_sessions_per_subject`: the one over the other.
    - `conversions`: trial subjects that were subscribed to a paid plan (one of the tenant's
      plans other than the default) after their first trial session of the window, whenever
      since; `conversion_rate`: conversions per trial subject. Both averages are null when
      there is no trial subject, and are given to 3 decimals.
    - `refused_starts`: starts refused with 402, per reason: `trial_exhausted` (the session
      limit), `quota_exceeded` (adding a resource over the monthly quota) and
      `insufficient_credits` (below the minimum balance to start); `subjects_exhausted`: the
      distinct subjects refused `trial_exhausted`. Refusals are kept per subject, kind, reason
      and day of the tenant's time zone, so they count for every day the window touches.

    Every figure is counted by the store."""

    def __init__(
        self,
        plans: PlanRepository,
        trial_sessions: TrialSessions,
        refused_starts: RefusedStarts,
        clock: Clock,
    ) -> None:
        self._plans = plans
        self._trial_sessions = trial_sessions
        self._refused_starts = refused_starts
        self._clock = clock

    async def __call__(self, query: ReportTrialsQuery) -> TrialReport:
        window = Window.of_days(
            query.start, query.end, self._clock.now(), query.calendar, DEFAULT_DAYS
        )
        start, end = window.start, window.end
        assert start is not None and end is not None  # closed: both bounds set
        trial = FreeTrial.of(await self._plans.all(query.tenant_id))
        use = (
            TrialUse()
            if trial is None
            else await self._trial_sessions.use(query.tenant_id, start, end, trial)
        )
        days = days_of(start, end, query.calendar)
        refusals = await self._refused_starts.tally(query.tenant_id, *days)
        return TrialReport(start, end, use, refusals)
