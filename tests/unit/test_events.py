"""Events: numbered so that retries and losses show, and counted by label for distributions."""

import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from types import FrameType
from typing import Any

import pytest

from domain.errors import InvalidInput
from domain.event_gaps import as_ranges, find_gaps, gaps_beside_deleted, merged
from domain.events import MAX_SEQUENCE_NO, Distribution, Event

AT = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("numbers", "gaps"),
    [
        ([], []),
        ([1, 2, 3], []),
        ([1, 2, 5], [(3, 4)]),
        ([3], [(1, 2)]),
        ([1], []),
        ([2, 4, 4, 7], [(1, 1), (3, 3), (5, 6)]),
    ],
)
def test_gaps_are_the_missing_numbers_up_to_the_highest(
    numbers: list[int], gaps: list[tuple[int, int]]
) -> None:
    assert find_gaps(numbers) == gaps


def test_numbers_are_kept_as_the_fewest_ranges() -> None:
    assert as_ranges([7, 1, 2, 3, 5, 2]) == [(1, 3), (5, 5), (7, 7)]
    assert merged([(5, 6), (1, 2), (3, 3), (8, 9), (9, 12)]) == [(1, 3), (5, 6), (8, 12)]


@pytest.mark.parametrize(
    ("arrived", "deleted"),
    [
        ([1, 2, 4], [1, 2]),  # the defect: 1 and 2 were reported missing
        ([1, 2, 4], [1, 2, 4]),  # nothing stored: 3 is still missing
        ([2, 3, 7, 9], [9]),  # the highest deleted: 8 is still missing
        ([1, 3, 5, 7, 9], [1, 5, 9]),
        ([1, 2, 3], [2]),
        ([4, 5], []),
    ],
)
def test_numbers_retention_deleted_are_no_gaps_and_the_gaps_between_them_stay(
    arrived: list[int], deleted: list[int]
) -> None:
    stored = [n for n in arrived if n not in deleted]

    gaps = gaps_beside_deleted(
        find_gaps(stored), max(stored, default=0), max(arrived), as_ranges(deleted)
    )

    assert gaps == find_gaps(arrived)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"sequence_no": 0}, "sequence_no"),
        ({"sequence_no": MAX_SEQUENCE_NO + 1}, "sequence_no"),
        ({"type": ""}, "type"),
        ({"label": "x" * 65}, "label"),
        ({"category": "a\x00b"}, "category"),
        ({"at": datetime(2026, 11, 24, 12, 0)}, "at"),
        ({"meters": {"photos": -1}}, "meters.photos"),
    ],
    ids=repr,
)
def test_an_event_that_breaks_a_rule_names_the_field(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        Event(**{"session_id": "s", "sequence_no": 1, "type": "tap", "at": AT, **fields})
    assert refused.value.field == field


def test_an_event_time_is_kept_in_utc() -> None:
    event = Event("s", 1, "tap", datetime(2026, 11, 24, 21, 0, tzinfo=timezone(timedelta(hours=9))))
    assert event.at == AT and event.at.tzinfo is UTC


def test_percentages_are_shares_of_the_counted_events() -> None:
    distribution = Distribution(total=20, counts={"red": 1, "yellow": 4, "green": 15})
    assert distribution.percentages == {"red": 5.0, "yellow": 20.0, "green": 75.0}


def test_percentages_are_rounded_to_two_places() -> None:
    assert Distribution(3, {"a": 1, "b": 2}).percentages == {"a": 33.33, "b": 66.67}


def test_nothing_counted_has_no_percentages() -> None:
    assert Distribution(0, {}).percentages == {}


def lines_run(work: Callable[[], Any], function: Callable[..., Any]) -> int:
    """How many lines of `function` running `work` executes (its own frames only)."""
    counted = 0

    def trace(frame: FrameType, event: str, _: Any) -> Any:
        nonlocal counted
        if frame.f_code is not function.__code__:
            return None
        if event == "line":
            counted += 1
        return trace

    sys.settrace(trace)
    try:
        work()
    finally:
        sys.settrace(None)
    return counted


def test_gaps_beside_deleted_takes_steps_in_proportion_to_gaps_and_ranges() -> None:
    """A lossy client sent every other number; retention deleted the older half: 300 ranges
    deleted, 300 gaps among those stored. Found by a review: every read of such a session took
    steps in gaps x ranges (5 s at 16,000 of each)."""
    arrived = list(range(1, 1200, 2))
    deleted, stored = as_ranges(arrived[:300]), arrived[300:]
    found = find_gaps(stored)

    def read() -> None:
        assert gaps_beside_deleted(found, stored[-1], arrived[-1], deleted) == find_gaps(arrived)

    steps = lines_run(read, gaps_beside_deleted)

    assert steps <= 20 * (len(found) + len(deleted)), steps
