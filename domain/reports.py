"""Report figures, and the rules behind the two that need more than a sum.

Stores compute these where the data lives (SQL aggregation, pipelines); the functions here state
the rules, and the in-memory store uses them directly.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, TypeVar

from domain.usage import Usage

Interval = tuple[datetime, datetime]


@dataclass(frozen=True, slots=True)
class WatchTime:
    """One subject's time on a resource, over its exited sessions; or, grouped by a dimension,
    the time of the viewers' sessions with one value of it (no subject named)."""

    subject_id: str | None  # None in a group's figures
    visit_count: int
    total_seconds: float
    # Overlapping sessions (two tabs) of one subject counted once; a group's: its subjects' sum.
    unique_seconds: float
    group: str | None = None  # the dimension's value, when grouped (None: sessions without it)

    def __post_init__(self) -> None:
        _to_the_millisecond(self, "total_seconds", "unique_seconds")

    @property
    def avg_seconds(self) -> float:
        return (
            to_the_millisecond(self.total_seconds / self.visit_count) if self.visit_count else 0.0
        )


@dataclass(frozen=True)
class ResourceActivity:
    """The sessions of one resource; or, grouped by a dimension, those with one value of it
    across resources (no resource named)."""

    resource_id: str | None  # None in a group's figures
    total_sessions: int  # started in the window, active ones too
    unique_subjects: int
    # Who came: the subjects, and the anonymous sessions' distinct client keys (browsers).
    unique_visitors: int
    exited_sessions: int  # ended, whatever the status: an end is recorded with all but active
    total_duration_seconds: float  # exited sessions only
    active_now: int
    peak_concurrency: int
    group: str | None = None  # the dimension's value, when grouped (None: sessions without it)

    def __post_init__(self) -> None:
        _to_the_millisecond(self, "total_duration_seconds")

    @property
    def avg_duration_seconds(self) -> float:
        if not self.exited_sessions:
            return 0.0
        return to_the_millisecond(self.total_duration_seconds / self.exited_sessions)


@dataclass(frozen=True)
class UsageStats:
    total_sessions: int
    total_duration_seconds: float
    total_events: int
    total_credits_consumed: int
    meters: Usage = field(default_factory=dict)

    def __post_init__(self) -> None:
        _to_the_millisecond(self, "total_duration_seconds")


def keyed(key: str | None, group_by: str | None) -> tuple[str | None, str | None]:
    """A report row's own key (its resource or subject) and its group, from the value a store
    grouped it by: grouped by a dimension, that value is the group and the row names no
    resource or subject."""
    return (key, None) if group_by is None else (None, key)


def group_order(group: str | None) -> tuple[bool, str]:
    """Groups in the order of their values, the sessions without the dimension (None) last."""
    return group is None, group or ""


class Grouped(Protocol):
    """A report row that may belong to a group (WatchTime, ResourceActivity)."""

    @property
    def group(self) -> str | None: ...


GroupedRow = TypeVar("GroupedRow", bound=Grouped)


def in_group_order(rows: Iterable[GroupedRow]) -> list[GroupedRow]:
    """A grouped report's rows in the order of their groups (`group_order`)."""
    return sorted(rows, key=lambda row: group_order(row.group))


def to_the_millisecond(seconds: float) -> float:
    """Seconds are reported to the millisecond, so every store gives the same figures.
    (round(x, 3) would cost microseconds a call, which a report of 20,000 rows notices.)"""
    return round(seconds * 1000) / 1000


def _to_the_millisecond(figures: object, *names: str) -> None:
    for name in names:
        object.__setattr__(figures, name, to_the_millisecond(float(getattr(figures, name))))


def unique_seconds(intervals: Iterable[Interval]) -> float:
    """Seconds covered by the union of the intervals."""
    total = 0.0
    current: Interval | None = None
    for start, end in sorted(intervals):
        if current is not None and start <= current[1]:
            current = (current[0], max(current[1], end))
            continue
        if current is not None:
            total += (current[1] - current[0]).total_seconds()
        current = (start, end)
    if current is not None:
        total += (current[1] - current[0]).total_seconds()
    return total


def peak_concurrency(intervals: Iterable[tuple[datetime, datetime | None]]) -> int:
    """The most intervals open at once (an open end is still running); an interval ending
    when another starts does not overlap it."""
    points = []
    for start, end in intervals:
        points.append((start, 1))
        if end is not None:
            points.append((end, -1))
    peak = running = 0
    for _, step in sorted(points):  # at equal times, -1 sorts before +1
        running += step
        peak = max(peak, running)
    return peak
