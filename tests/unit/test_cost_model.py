"""The cost model's arithmetic: least squares through the origin, declining on too little data,
and predictions that print their inputs."""

from datetime import UTC, datetime, timedelta

import pytest

from domain.calendar import Calendar, Period
from domain.cost_model import (
    MIN_HOURS,
    Fit,
    Plan,
    Unfitted,
    fit_cost_model,
    fit_through_origin,
    predict,
)
from domain.errors import InvalidInput
from domain.rollups import Activity, ServerLoad, UsageFigures

HOUR = datetime(2026, 11, 24, 9, tzinfo=UTC)


def hour(n: int, video_minutes: float, gb: float, users: int = 0, cpu: float = 0.0) -> UsageFigures:
    activity = Activity(
        "livekit",
        "",
        active_seconds=users * 3600,
        track_seconds={"video.seconds": video_minutes * 60},
    )
    load = ServerLoad(1, round(gb * 10**9), cpu, cpu, users, users) if gb or cpu else ServerLoad()
    return UsageFigures(Calendar().bucket(Period.HOUR, HOUR + timedelta(hours=n)), activity, load)


def test_a_line_through_the_origin_fits_exact_data_perfectly() -> None:
    fit = fit_through_origin([(100.0, 14.0), (200.0, 28.0), (50.0, 7.0)], "GB")

    assert isinstance(fit, Fit)
    assert fit.per_unit == pytest.approx(0.14)
    assert fit.r_squared == pytest.approx(1.0)
    assert fit.hours == 3


def test_noisy_data_fits_less_well_and_says_so() -> None:
    fit = fit_through_origin([(100.0, 10.0), (200.0, 35.0), (300.0, 38.0), (400.0, 70.0)], "GB")

    assert isinstance(fit, Fit)
    assert 0.15 < fit.per_unit < 0.17
    assert fit.r_squared is not None and 0.8 < fit.r_squared < 0.99


def test_hours_without_the_figure_do_not_count_and_too_few_hours_fit_nothing() -> None:
    points = [(0.0, 5.0)] * 10 + [(100.0, 14.0)] * (MIN_HOURS - 1)

    fit = fit_through_origin(points, "GB per video-minute")

    assert fit == Unfitted(
        f"GB per video-minute needs at least {MIN_HOURS} hours with both figures; "
        f"found {MIN_HOURS - 1}",
        MIN_HOURS - 1,
    )


def test_a_constant_figure_has_no_r_squared() -> None:
    fit = fit_through_origin([(40.0, 40.0)] * 4, "CPU")

    assert isinstance(fit, Fit) and fit.per_unit == 1.0 and fit.r_squared is None


def test_only_hours_with_snapshots_feed_the_model() -> None:
    hours = [hour(n, 2400, 336, users=40, cpu=40) for n in range(3)]
    hours.append(hour(3, 2400, 0))  # the media server did not report: no traffic known

    model = fit_cost_model(hours)

    assert model.hours == 3
    assert isinstance(model.gb_per_video_minute, Fit)
    assert model.gb_per_video_minute.per_unit == pytest.approx(0.14)
    assert isinstance(model.gb_per_user_hour, Fit)
    assert model.gb_per_user_hour.per_unit == pytest.approx(8.4)


def test_a_prediction_shows_its_arithmetic() -> None:
    model = fit_cost_model([hour(n, 1000 * (n + 1), 140 * (n + 1), 10, 10) for n in range(3)])

    prediction = predict(model, Plan(users=50, hours_per_day=5, days=22))

    assert prediction.traffic_gb == pytest.approx(46_200)
    assert prediction.arithmetic[0] == (
        "50 users x 5 h/day x 22 days x 60 = 330,000 video-minutes; x 0.14 GB per "
        "video-minute = 46,200 GB ~ 46.2 TB"
    )
    # The old planning note's 9.24 TB is this plan at one hour a day.
    one_hour = predict(model, Plan(users=50, hours_per_day=1, days=22))
    assert one_hour.traffic_gb == pytest.approx(9_240)


def test_a_model_without_a_fit_predicts_nothing_rather_than_guessing() -> None:
    prediction = predict(fit_cost_model([]), Plan(users=50, hours_per_day=5, days=22))

    assert prediction.traffic_gb is None and prediction.arithmetic == []


@pytest.mark.parametrize(
    ("users", "hours", "days", "field"),
    [
        (0, 5, 22, "users"),
        (50, 0, 22, "hours_per_day"),
        (50, 25, 22, "hours_per_day"),
        (50, 5, 0, "days"),
    ],
)
def test_a_plan_out_of_range_is_invalid(users: int, hours: float, days: int, field: str) -> None:
    with pytest.raises(InvalidInput) as error:
        Plan(users, hours, days)
    assert error.value.field == field
