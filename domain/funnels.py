"""Funnels: the stages a session of one kind goes through (frame → background → … → print), and
how far each session got.

A session reaches a stage with the first event that matches it at or after the moment it reached
the stage before (in the order of `at`, then `sequence_no`); the first stage is matched from the
session's start. One event reaches at most one stage, and a stage matched before the previous
one was reached does not count. `dropped_here` counts the sessions that reached a stage, no
later one, and did not complete.
"""

import hashlib
import json
from collections import Counter
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from domain.errors import InvalidInput
from domain.events import MAX_NAME_LENGTH
from domain.session import KIND_PATTERN, SessionStatus
from domain.text import check_text

MIN_STAGES, MAX_STAGES = 2, 20
# Conversions are ratios to 4 decimal places (0.8333). Times in a stage are counted in
# milliseconds (the precision instants are kept to, domain/clock.py) to 3 significant digits: a
# median is off by at most 0.5 %, and a month of them adds up in a few thousand counts.
RATIO_PLACES = 4
SECONDS_PLACES = 3
SIGNIFICANT_DIGITS = 3


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

    def fingerprint(self, dimensions: Iterable[str]) -> str:
        """Names what a rollup of the funnel counted: its kind and stages, and the dimensions
        its rows are split by. A rollup of another definition or other dimensions is not its."""
        counted = [self.kind, [asdict(s) for s in self.stages], sorted(dimensions)]
        return hashlib.sha256(json.dumps(counted, sort_keys=True).encode()).hexdigest()[:32]

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
    """How far a group of sessions got, folded one session at a time; tallies of different
    sessions add up (rollups keep one a day per group, and a report adds the days it covers)."""

    stages: int
    reached: list[int] = field(default_factory=list)
    dropped: list[int] = field(default_factory=list)
    # Per stage but the last: how many sessions spent each time there before reaching the next
    # (milliseconds to SIGNIFICANT_DIGITS, so that a month of them is a few thousand counts).
    durations: list[Counter[int]] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)  # every session of the group

    def __post_init__(self) -> None:
        self.reached = self.reached or [0] * self.stages
        self.dropped = self.dropped or [0] * self.stages
        self.durations = self.durations or [Counter() for _ in range(self.stages - 1)]

    @classmethod
    def of(cls, funnel: Funnel) -> "FunnelTally":
        return cls(len(funnel.stages))

    def add(self, funnel: Funnel, trail: Trail) -> None:
        """One session's events (the session itself is counted by `count`)."""
        path = funnel.path(trail.touches)
        for i, at in enumerate(path):
            self.reached[i] += 1
            if i + 1 < len(path):
                self.durations[i][time_in_stage(path[i + 1] - at)] += 1
        if path and trail.status is not SessionStatus.COMPLETED:
            self.dropped[len(path) - 1] += 1

    def count(self, statuses: Mapping[SessionStatus, int]) -> None:
        """The group's sessions by status, those without any matching event included."""
        self.statuses.update({s.value: n for s, n in statuses.items()})

    def __iadd__(self, other: "FunnelTally") -> "FunnelTally":
        for i in range(self.stages):
            self.reached[i] += other.reached[i]
            self.dropped[i] += other.dropped[i]
        for mine, theirs in zip(self.durations, other.durations, strict=True):
            mine.update(theirs)
        self.statuses.update(other.statuses)
        return self

    def document(self) -> dict[str, Any]:
        """The tally as JSON values, as rollups keep it."""
        return {
            "reached": self.reached,
            "dropped": self.dropped,
            "durations": [{str(ms): n for ms, n in sorted(d.items())} for d in self.durations],
            "statuses": dict(self.statuses),
        }

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> "FunnelTally":
        return cls(
            len(document["reached"]),
            list(document["reached"]),
            list(document["dropped"]),
            [Counter({int(ms): n for ms, n in d.items()}) for d in document["durations"]],
            Counter(document["statuses"]),
        )

    def figures(self, funnel: Funnel) -> FunnelFigures:
        sessions = sum(self.statuses.values())
        stages = []
        previous = sessions
        for i, stage in enumerate(funnel.stages):
            reached = self.reached[i]
            durations = self.durations[i] if i < len(self.durations) else Counter()
            stages.append(
                StageFigures(
                    stage.name,
                    reached,
                    ratio(reached, previous),
                    ratio(reached, sessions),
                    self.dropped[i],
                    median_seconds(durations),
                )
            )
            previous = reached
        exits = {status.value: self.statuses.get(status.value, 0) for status in SessionStatus}
        return FunnelFigures(sessions, stages, exits)


def time_in_stage(spent: timedelta) -> int:
    """Milliseconds to SIGNIFICANT_DIGITS (12,345 ms is 12,300; under a second, exact)."""
    ms = round(spent.total_seconds() * 1000)
    places = len(str(abs(ms))) - SIGNIFICANT_DIGITS
    return round(ms, -places) if places > 0 else ms


def median_seconds(durations: Mapping[int, int]) -> float | None:
    """The median of times counted in milliseconds, in seconds (the mean of the middle two of an
    even count, as statistics.median); None when there are none."""
    total = sum(durations.values())
    if not total:
        return None
    middle = [(total - 1) // 2, total // 2]  # 0-based ranks of the middle one or two
    values: list[int] = []
    seen = 0
    for ms in sorted(durations):
        seen += durations[ms]
        while middle and middle[0] < seen:
            values.append(ms)
            middle.pop(0)
        if not middle:
            break
    return round(sum(values) / len(values) / 1000, SECONDS_PLACES)


def ratio(part: int, whole: int) -> float | None:
    """part / whole to RATIO_PLACES decimal places (round half to even); None when whole is 0."""
    return round(part / whole, RATIO_PLACES) if whole else None
