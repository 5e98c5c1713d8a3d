"""The funnel rules: how far one session got, and the figures of many."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from domain.errors import InvalidInput
from domain.funnels import (
    Funnel,
    FunnelTally,
    Stage,
    StageMatch,
    Touch,
    Trail,
    median_seconds,
    time_in_stage,
)
from domain.session import SessionStatus

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
KIOSK = Funnel(
    "photo",
    "kiosk",
    (
        Stage("frame", StageMatch("screen_enter", label="frame")),
        Stage("capture", StageMatch("capture")),
        Stage("payment", StageMatch("payment", category="card")),
    ),
)


def touch(
    n: int, second: float, type: str, label: str | None = None, category: str | None = None
) -> Touch:
    return Touch(n, T0 + timedelta(seconds=second), type, label, category)


def reached(funnel: Funnel, *touches: Touch) -> list[float]:
    return [(at - T0).total_seconds() for at in funnel.path(touches)]


def test_a_session_reaches_the_stages_in_order() -> None:
    path = reached(
        KIOSK,
        touch(1, 0, "screen_enter", "frame"),
        touch(2, 10, "capture"),
        touch(3, 30, "payment", category="card"),
    )

    assert path == [0, 10, 30]


def test_events_are_taken_in_time_order_whatever_their_numbers() -> None:
    # Sent out of order: the capture was numbered before the frame was chosen, but happened after.
    path = reached(KIOSK, touch(2, 10, "capture"), touch(1, 0, "screen_enter", "frame"))

    assert path == [0, 10]


def test_a_stage_matched_before_the_previous_one_was_reached_does_not_count() -> None:
    path = reached(
        KIOSK,
        touch(1, 0, "capture"),
        touch(2, 5, "screen_enter", "frame"),
        touch(3, 9, "payment", category="card"),  # before any capture after the frame
    )

    assert path == [5]


def test_a_repeated_stage_counts_from_its_first_match() -> None:
    path = reached(
        KIOSK,
        touch(1, 0, "screen_enter", "frame"),
        touch(2, 3, "screen_enter", "frame"),
        touch(3, 8, "capture"),
        touch(4, 9, "capture"),
    )

    assert path == [0, 8]


def test_one_event_reaches_one_stage_even_when_two_stages_match_it() -> None:
    twice = Funnel(
        "twice",
        "kiosk",
        (Stage("first", StageMatch("tap")), Stage("second", StageMatch("tap"))),
    )

    assert reached(twice, touch(1, 0, "tap")) == [0]
    assert reached(twice, touch(1, 0, "tap"), touch(2, 0, "tap")) == [0, 0]


def test_label_and_category_must_match_when_the_stage_names_them() -> None:
    path = reached(
        KIOSK,
        touch(1, 0, "screen_enter", "background"),  # another screen
        touch(2, 1, "screen_enter", "frame"),
        touch(3, 2, "capture", "any", "any"),  # type only: any label or category
        touch(4, 3, "payment", category="cash"),
    )

    assert path == [1, 2]


def four_sessions() -> FunnelTally:
    tally = FunnelTally.of(KIOSK)
    full = [
        touch(1, 0, "screen_enter", "frame"),
        touch(2, 10, "capture"),
        touch(3, 30, "payment", category="card"),
    ]
    tally.add(KIOSK, Trail("a", SessionStatus.COMPLETED, full))
    tally.add(KIOSK, Trail("b", SessionStatus.ABANDONED, [*full[:1], touch(2, 20, "capture")]))
    tally.add(KIOSK, Trail("c", SessionStatus.TIMED_OUT, full[:1]))
    # Reached the end but did not complete: dropped at the last stage.
    tally.add(KIOSK, Trail("d", SessionStatus.FAILED, full))
    tally.count(
        {SessionStatus.COMPLETED: 1, SessionStatus.ABANDONED: 2, SessionStatus.TIMED_OUT: 1,
         SessionStatus.FAILED: 1, SessionStatus.ACTIVE: 1}
    )  # fmt: skip
    return tally


def test_the_figures_of_many_sessions() -> None:
    figures = four_sessions().figures(KIOSK)

    assert figures.sessions == 6
    assert [
        (s.name, s.reached, s.conversion_from_previous, s.conversion_from_start, s.dropped_here,
         s.median_seconds_in_stage)
        for s in figures.stages
    ] == [
        ("frame", 4, 0.6667, 0.6667, 1, 10.0),
        ("capture", 3, 0.75, 0.5, 1, 20.0),
        ("payment", 2, 0.6667, 0.3333, 1, None),
    ]  # fmt: skip
    assert figures.exit_statuses == {
        "active": 1, "completed": 1, "abandoned": 2, "timed_out": 1, "cancelled": 0, "failed": 1,
    }  # fmt: skip


def test_tallies_add_up_as_one_tally_of_all_their_sessions() -> None:
    one_day, other_day = four_sessions(), four_sessions()
    other_day.add(KIOSK, Trail("e", SessionStatus.COMPLETED, [touch(1, 0, "screen_enter", "frame"),
                                                               touch(2, 40, "capture")]))  # fmt: skip
    other_day.count({SessionStatus.COMPLETED: 1})

    both = FunnelTally.of(KIOSK)
    both += one_day
    both += FunnelTally.from_document(json.loads(json.dumps(other_day.document())))
    figures = both.figures(KIOSK)

    assert figures.sessions == 13
    assert [(s.reached, s.dropped_here, s.median_seconds_in_stage) for s in figures.stages] == [
        (9, 2, 10.0),  # to the capture: 10, 20, 10 twice, and 40: 10 10 10 10 20 20 40
        (7, 2, 20.0),  # to the payment: 20, 20 twice
        (4, 2, None),
    ]
    assert figures.exit_statuses["completed"] == 3


@pytest.mark.parametrize(
    ("seconds", "counted_ms"),
    [(0.0004, 0), (0.999, 999), (1.2344, 1230), (12.345, 12300), (12.351, 12400), (61.0, 61000),
     (3599.5, 3600000)],
)  # fmt: skip
def test_a_time_in_stage_is_counted_to_three_significant_digits(
    seconds: float, counted_ms: int
) -> None:
    assert time_in_stage(timedelta(seconds=seconds)) == counted_ms


@pytest.mark.parametrize(
    ("counted", "median"),
    [({}, None), ({5000: 1}, 5.0), ({1000: 1, 2000: 1}, 1.5), ({1000: 2, 9000: 1}, 1.0),
     ({1000: 1, 2000: 1, 3000: 1, 4000: 1}, 2.5), ({1: 1, 2: 2}, 0.002)],
)  # fmt: skip
def test_the_median_of_counted_times_is_the_middle_one_or_the_mean_of_the_middle_two(
    counted: dict[int, int], median: float | None
) -> None:
    assert median_seconds(counted) == median


def test_no_sessions_give_no_ratios() -> None:
    figures = FunnelTally.of(KIOSK).figures(KIOSK)

    assert figures.sessions == 0
    assert {(s.conversion_from_previous, s.conversion_from_start) for s in figures.stages} == {
        (None, None)
    }


@pytest.mark.parametrize(
    ("stages", "field"),
    [
        ((Stage("only", StageMatch("tap")),), "stages"),
        (tuple(Stage(f"s{i}", StageMatch("tap")) for i in range(21)), "stages"),
        ((Stage("a", StageMatch("tap")), Stage("a", StageMatch("pay"))), "stages[1].name"),
        ((Stage("a", StageMatch("tap")), Stage("b", StageMatch(""))), "stages[1].match.type"),
        ((Stage("a", StageMatch("tap")), Stage("b", StageMatch("t", ""))), "stages[1].match.label"),
    ],
)
def test_a_funnel_breaking_a_rule_names_the_field(stages: tuple[Stage, ...], field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        Funnel("photo", "kiosk", stages)

    assert refused.value.field == field


def test_a_funnel_is_named_like_a_kind() -> None:
    with pytest.raises(InvalidInput) as refused:
        Funnel("Photo Booth", "kiosk", KIOSK.stages)

    assert refused.value.field == "name"
