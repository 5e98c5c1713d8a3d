"""Admins fit the cost model over hourly rollups, and price a plan with it."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from application.ports import Clock
from application.reports.report_usage import bounded_window
from application.rollups.ports import RollupRepository
from domain.cost_model import CostModel, Plan, Prediction, fit_cost_model, predict
from domain.rollups import Period, usage_figures

DEFAULT_SPAN = timedelta(days=30)


@dataclass(frozen=True)
class CostModelReport:
    start: datetime
    end: datetime
    model: CostModel
    prediction: Prediction | None


class ReportCostModel:
    def __init__(self, rollups: RollupRepository, clock: Clock) -> None:
        self._rollups = rollups
        self._clock = clock

    async def __call__(
        self,
        tenant_id: str,
        start: datetime | None = None,
        end: datetime | None = None,
        plan: Plan | None = None,
    ) -> CostModelReport:
        """Fitted over the hours in [start, end) (default: the last 30 days)."""
        window = bounded_window(Period.HOUR, start, end, self._clock.now(), DEFAULT_SPAN)
        assert window.start is not None and window.end is not None
        hours = await self._rollups.find(tenant_id, Period.HOUR, window)
        model = fit_cost_model(usage_figures(hour) for hour in hours)
        prediction = None if plan is None else predict(model, plan)
        return CostModelReport(window.start, window.end, model, prediction)
