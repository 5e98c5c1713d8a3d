"""Admins fit the cost model over hourly rollups, and price a plan with it."""

from dataclasses import dataclass
from datetime import datetime

from application.ports import Clock
from application.reports.report_usage import bounded_window
from application.rollups.ports import RollupRepository
from domain.calendar import Calendar, Period
from domain.cost_model import CostModel, Plan, Prediction, fit_cost_model, predict
from domain.rollups import usage_figures

DEFAULT_HOURS = 30 * 24
UTC_HOURS = Calendar()  # hours are UTC hours in every time zone


@dataclass(frozen=True)
class ReportCostModelQuery:
    tenant_id: str
    start: datetime | None = None
    end: datetime | None = None
    plan: Plan | None = None


@dataclass(frozen=True)
class CostModelReport:
    start: datetime
    end: datetime
    model: CostModel
    prediction: Prediction | None


class ReportCostModel:
    """The cost model, fitted over the hourly rollups that start in the window asked for (`from`
    inclusive, `to` exclusive; by default the last 30 days; `from` before `to`, at most 1000
    hours apart): traffic GB per video-minute and per user-hour, and CPU % per concurrent user,
    through the origin. Each fit states how many hours it used and how well the line fits; with
    fewer than 3 hours that have both figures it says so instead of a number. Given a plan
    (users, hours a day, days, all three together), it predicts what the plan needs and shows
    its arithmetic."""

    def __init__(self, rollups: RollupRepository, clock: Clock) -> None:
        self._rollups = rollups
        self._clock = clock

    async def __call__(self, query: ReportCostModelQuery) -> CostModelReport:
        now = self._clock.now()
        window = bounded_window(UTC_HOURS, Period.HOUR, query.start, query.end, now, DEFAULT_HOURS)
        assert window.start is not None and window.end is not None
        hours = await self._rollups.find(query.tenant_id, Period.HOUR, window)
        model = fit_cost_model(
            figures
            for hour in hours
            for figures in usage_figures(hour, UTC_HOURS.bucket(Period.HOUR, hour.start))
        )
        prediction = None if query.plan is None else predict(model, query.plan)
        return CostModelReport(window.start, window.end, model, prediction)
