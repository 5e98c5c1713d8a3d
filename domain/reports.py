"""Report figures, and the rules behind the two that need more than a sum.

Stores compute these where the data lives (SQL aggregation, pipelines); the functions here state
the rules, and the in-memory store uses them directly.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from domain.usage import Usage

Interval = tuple[datetime, datetime]


@dataclass(frozen=True, slots=True)
class WatchTime:
    """One subject's time on a resource, over its exited sessions."""

    subject_id: str
    visit_count: int
    total_seconds: float
    unique_seconds: float  # overlapping sessions (two tabs) counted once

    def __post_init__(self) -> None:
        _to_the_millisecond(self, "total_seconds", "unique_seconds")

    @property
    def avg_seconds(self) -> float:
        return (
            to_the_millisecond(self.total_seconds / self.visit_count) if self.visit_count else 0.0
        )


@dataclass(frozen=True)
class ResourceActivity:
    resource_id: str
    total_sessions: int  # started in the window, active ones too
    unique_subjects: int
    # Who came: the subjects, and the anonymous sessions' distinct client keys (browsers).
    unique_visitors: int
    exited_sessions: int  # ended, whatever the status: an end is recorded with all but active
    total_duration_seconds: float  # exited sessions only
    active_now: int
    peak_concurrency: int

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
