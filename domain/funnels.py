"""Funnels: the stages a session of one kind goes through (frame → background → … → print), and
how far each session got.

A session reaches a stage with the first event that matches it at or after the moment it reached
the stage before (in the order of `at`, then `sequence_no`); the first stage is matched from the
session's start. One event reaches at most one stage, and a stage matched before the previous
one was reached does not count. `dropped_here` counts the sessions that reached a stage, no
later one, and did not complete.
"""

import statistics
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from domain.errors import InvalidInput
from domain.events import MAX_NAME_LENGTH
from domain.session import KIND_PATTERN, SessionStatus
from domain.text import check_text

MIN_STAGES, MAX_STAGES = 2, 20
# Conversions are ratios to 4 decimal places (0.8333); medians are seconds to the millisecond,
# the precision instants are kept to (domain/clock.py).
RATIO_PLACES = 4
SECONDS_PLACES = 3


@dataclass(frozen=True)
class StageMatch:
    """The events that reach a stage: of this `type`, and of this `label` and `category` when
    they are given."""

    type: str
    label: str | None = None
    category: str | None = None

    def matches(self, touch: "Touch") -> bool:
        return (
            touch.type == self.type
            and (self.label is None or touch.label == self.label)
            and (self.category is None or touch.category == self.category)
        )


@dataclass(frozen=True)
class Stage:
    name: str
    match: StageMatch


@dataclass(frozen=True)
class Funnel:
    """A tenant's named funnel over the sessions of one kind: 2-20 stages of unique names."""

    name: str
    kind: str
    stages: tuple[Stage, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", tuple(self.stages))
        if not KIND_PATTERN.match(self.name):
            raise InvalidInput("name", "1-64 characters of a-z 0-9 _ . -")
        if not KIND_PATTERN.match(self.kind):
            raise InvalidInput("kind", "1-64 characters of a-z 0-9 _ . -")
        if not MIN_STAGES <= len(self.stages) <= MAX_STAGES:
            raise InvalidInput("stages", f"must have {MIN_STAGES}-{MAX_STAGES} stages")
        seen: set[str] = set()
        for i, stage in enumerate(self.stages):
            check_text(f"stages[{i}].name", stage.name, MAX_NAME_LENGTH)
            if stage.name in seen:
                raise InvalidInput(f"stages[{i}].name", f"{stage.name!r} names an earlier stage")
            seen.add(stage.name)
            for part in ("type", "label", "category"):
                value = getattr(stage.match, part)
                if value is not None or part == "type":
                    check_text(f"stages[{i}].match.{part}", value, MAX_NAME_LENGTH)

    @property
    def types(self) -> frozenset[str]:
        """The event types any stage matches: no other event can move a session on."""
        return frozenset(stage.match.type for stage in self.stages)

    def path(self, touches: Iterable["Touch"]) -> list[datetime]:
        """When the session reached each stage, in stage order, as far as it got."""
        reached: list[datetime] = []
        for touch in sorted(touches, key=lambda t: (t.at, t.sequence_no)):
            if len(reached) == len(self.stages):
                break
            if self.stages[len(reached)].match.matches(touch):
                reached.append(touch.at)
        return reached


@dataclass(frozen=True)
class Touch:
    """An event as a funnel sees it."""

    sequence_no: int
    at: datetime
    type: str
    label: str | None = None
    category: str | None = None


@dataclass(frozen=True)
class Trail:
    """One session's events that a funnel may match, and how the session ended (or not yet)."""

    session_id: str
    status: SessionStatus
    touches: list[Touch]
    group: str | None = None  # the value of the dimension a report groups by


async def trails_of(
    rows: AsyncIterable[tuple[str, SessionStatus, str | None, Touch]],
) -> AsyncIterator[Trail]:
    """(session_id, status, group, touch) rows ordered by session, one Trail per session as soon
    as its last row is read."""
    current: Trail | None = None
    async for session_id, status, group, touch in rows:
        if current is None or current.session_id != session_id:
            if current is not None:
                yield current
            current = Trail(session_id, status, [], group)
        current.touches.append(touch)
    if current is not None:
        yield current


@dataclass(frozen=True)
class StageFigures:
    name: str
    reached: int
    conversion_from_previous: float | None
    conversion_from_start: float | None
    dropped_here: int
    median_seconds_in_stage: float | None


@dataclass(frozen=True)
class FunnelFigures:
    sessions: int
    stages: list[StageFigures]
    exit_statuses: dict[str, int]
    # With group_by: the same figures per value of the dimension (None: sessions without it).
    groups: list["FunnelGroup"] = field(default_factory=list)


@dataclass(frozen=True)
class FunnelGroup:
    group: str | None
    figures: FunnelFigures


@dataclass
class FunnelTally:
    """The paths of one group of sessions (today the whole window; one tally per group value
    once reports group), folded one session at a time."""

    funnel: Funnel
    reached: list[int] = field(default_factory=list)
    dropped: list[int] = field(default_factory=list)
    # Per stage but the last: seconds from reaching it to reaching the next, one per session.
    durations: list[list[float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        count = len(self.funnel.stages)
        self.reached = [0] * count
        self.dropped = [0] * count
        self.durations = [[] for _ in range(count - 1)]

    def add(self, trail: Trail) -> None:
        path = self.funnel.path(trail.touches)
        for i, at in enumerate(path):
            self.reached[i] += 1
            if i + 1 < len(path):
                self.durations[i].append((path[i + 1] - at).total_seconds())
        if path and trail.status is not SessionStatus.COMPLETED:
            self.dropped[len(path) - 1] += 1

    def figures(self, statuses: Mapping[SessionStatus, int]) -> FunnelFigures:
        """The report, given how many of the group's sessions ended (or not yet) in each status:
        their sum is the number of sessions, the start of the funnel."""
        sessions = sum(statuses.values())
        stages = []
        previous = sessions
        for i, stage in enumerate(self.funnel.stages):
            reached = self.reached[i]
            durations = self.durations[i] if i < len(self.durations) else []
            stages.append(
                StageFigures(
                    stage.name,
                    reached,
                    ratio(reached, previous),
                    ratio(reached, sessions),
                    self.dropped[i],
                    round(statistics.median(durations), SECONDS_PLACES) if durations else None,
                )
            )
            previous = reached
        exits = {status.value: statuses.get(status, 0) for status in SessionStatus}
        return FunnelFigures(sessions, stages, exits)


def ratio(part: int, whole: int) -> float | None:
    """part / whole to RATIO_PLACES decimal places (round half to even); None when whole is 0."""
    return round(part / whole, RATIO_PLACES) if whole else None
