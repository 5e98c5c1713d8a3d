"""The cost model: measured ratios to price plans with, instead of guesses.

Over hourly rollups, least squares through the origin fits traffic GB per video-minute, traffic
GB per user-hour and CPU % per concurrent user (no fixed part: an empty server sends nothing).
Each fit states how many hours it used and its R²; with fewer than MIN_HOURS hours that have both
figures, it states that instead of a number. A prediction shows its arithmetic, so that a slip
in the inputs (1 h a day where 5 were meant) is visible.
"""

from collections.abc import Iterable
from dataclasses import dataclass

from domain.errors import InvalidInput
from domain.rollups import UsageFigures

MIN_HOURS = 3


@dataclass(frozen=True)
class Fit:
    """y ~ per_unit x x, fitted over `hours` hours."""

    per_unit: float
    r_squared: float | None  # None when y does not vary (nothing to explain)
    hours: int


@dataclass(frozen=True)
class Unfitted:
    """Too little data to fit: why, and how many hours had both figures."""

    reason: str
    hours: int


def fit_through_origin(points: list[tuple[float, float]], what: str) -> Fit | Unfitted:
    usable = [(x, y) for x, y in points if x > 0]
    if len(usable) < MIN_HOURS:
        return Unfitted(
            f"{what} needs at least {MIN_HOURS} hours with both figures; found {len(usable)}",
            len(usable),
        )
    sxx = sum(x * x for x, _ in usable)
    slope = sum(x * y for x, y in usable) / sxx
    mean = sum(y for _, y in usable) / len(usable)
    total = sum((y - mean) ** 2 for _, y in usable)
    residual = sum((y - slope * x) ** 2 for x, y in usable)
    r_squared = 1 - residual / total if total > 0 else None
    return Fit(slope, r_squared, len(usable))


@dataclass(frozen=True)
class CostModel:
    hours: int  # hourly rollups in the window
    gb_per_video_minute: Fit | Unfitted
    gb_per_user_hour: Fit | Unfitted
    cpu_percent_per_concurrent_user: Fit | Unfitted


def fit_cost_model(hours: Iterable[UsageFigures]) -> CostModel:
    # Traffic and CPU are known only for hours with snapshots.
    measured = [h for h in hours if h.load.snapshots]
    all_hours = len(measured)
    return CostModel(
        all_hours,
        fit_through_origin(
            [(h.video_minutes, h.traffic_gb) for h in measured], "GB per video-minute"
        ),
        fit_through_origin([(h.user_hours, h.traffic_gb) for h in measured], "GB per user-hour"),
        fit_through_origin(
            [(h.concurrent_users_avg or 0.0, h.cpu_percent_avg or 0.0) for h in measured],
            "CPU % per concurrent user",
        ),
    )


@dataclass(frozen=True)
class Plan:
    """A plan to price: `users` watching video `hours_per_day` hours a day for `days` days."""

    users: int
    hours_per_day: float
    days: int

    def __post_init__(self) -> None:
        if not 1 <= self.users <= 1_000_000:
            raise InvalidInput("users", "must be 1-1000000")
        if not 0 < self.hours_per_day <= 24:
            raise InvalidInput("hours_per_day", "must be more than 0 and at most 24")
        if not 1 <= self.days <= 3660:
            raise InvalidInput("days", "must be 1-3660")

    @property
    def video_minutes(self) -> float:
        return self.users * self.hours_per_day * 60 * self.days

    @property
    def user_hours(self) -> float:
        return self.users * self.hours_per_day * self.days


@dataclass(frozen=True)
class Prediction:
    plan: Plan
    traffic_gb: float | None  # by GB per video-minute
    traffic_gb_by_user_hours: float | None
    cpu_percent: float | None  # at `users` concurrent users
    arithmetic: list[str]


def predict(model: CostModel, plan: Plan) -> Prediction:
    lines: list[str] = []
    base = f"{plan.users:,} users x {_num(plan.hours_per_day)} h/day x {plan.days} days"
    traffic = _traffic(
        model.gb_per_video_minute, plan.video_minutes, f"{base} x 60", "video-minute", lines
    )
    by_user_hours = _traffic(model.gb_per_user_hour, plan.user_hours, base, "user-hour", lines)
    per_user = model.cpu_percent_per_concurrent_user
    cpu = None
    if isinstance(per_user, Fit):
        cpu = per_user.per_unit * plan.users
        lines.append(
            f"{plan.users:,} concurrent users x {_num(per_user.per_unit, 4)} CPU % per user "
            f"= {_num(cpu, 1)} % CPU"
        )
    return Prediction(plan, traffic, by_user_hours, cpu, lines)


def _traffic(
    fit: Fit | Unfitted, amount: float, how: str, unit: str, lines: list[str]
) -> float | None:
    """GB for `amount` units at the fitted GB per unit, its arithmetic added to `lines`."""
    if not isinstance(fit, Fit):
        return None
    gb = fit.per_unit * amount
    lines.append(
        f"{how} = {_num(amount)} {unit}s; x {_num(fit.per_unit, 4)} GB per {unit} "
        f"= {_num(gb, 1)} GB ~ {_num(gb / 1000, 2)} TB"
    )
    return gb


def _num(value: float, places: int = 0) -> str:
    """A figure as a person reads it: thousands separated, no needless zeros."""
    text = f"{value:,.{places}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text
