"""How long a device took to do things (start the app, capture, print, take a payment), and the
exact percentiles of those durations."""

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from domain.clock import as_utc
from domain.errors import InvalidInput
from domain.session import KIND_PATTERN, JSONObject
from domain.text import check_json, check_text

MAX_ID_LENGTH = 200
MAX_NAME_LENGTH = 200
MAX_DURATION_MS = 7 * 24 * 3600 * 1000  # a week: anything longer is a clock gone wrong
MAX_STEPS = 50
PERCENTILES = (50, 95, 99)
STEP_PERCENTILES = (50, 95)


class GroupBy(StrEnum):
    APP_VERSION = "app_version"
    DEVICE_ID = "device_id"


@dataclass(frozen=True)
class Metric:
    id: str
    device_id: str
    app_version: str
    type: str
    started_at: datetime
    duration_ms: float
    success: bool
    session_id: str | None = None
    error_code: str | None = None
    breakdown: dict[str, float] = field(default_factory=dict)  # step: ms
    context: JSONObject | None = None

    def __post_init__(self) -> None:
        for name, limit in (("id", MAX_ID_LENGTH), ("device_id", MAX_ID_LENGTH)):
            check_text(name, getattr(self, name), limit)
        check_text("app_version", self.app_version, MAX_NAME_LENGTH)
        if not KIND_PATTERN.match(self.type):
            raise InvalidInput("type", "must be 1-64 characters of a-z 0-9 _ . -")
        for name in ("session_id", "error_code"):
            if (value := getattr(self, name)) is not None:
                check_text(name, value, MAX_NAME_LENGTH)
        object.__setattr__(self, "started_at", as_utc("started_at", self.started_at))
        object.__setattr__(self, "duration_ms", _duration("duration_ms", self.duration_ms))
        if len(self.breakdown) > MAX_STEPS:
            raise InvalidInput("breakdown", f"at most {MAX_STEPS} steps")
        for step in self.breakdown:
            check_text(f"breakdown.{step}", step, MAX_NAME_LENGTH)
        steps = {step: _duration(f"breakdown.{step}", ms) for step, ms in self.breakdown.items()}
        object.__setattr__(self, "breakdown", steps)
        if self.context is not None:
            check_json("context", self.context)

    @classmethod
    def ended(cls, started_at: datetime, ended_at: datetime, **fields: object) -> "Metric":
        """A metric sent with its end instead of its duration."""
        started = as_utc("started_at", started_at)
        ended = as_utc("ended_at", ended_at)
        if ended < started:
            raise InvalidInput("ended_at", "must not be before started_at")
        ms = (ended - started).total_seconds() * 1000
        return cls(started_at=started, duration_ms=ms, **fields)  # type: ignore[arg-type]


def _duration(field_name: str, ms: float) -> float:
    if isinstance(ms, bool) or not isinstance(ms, int | float) or not math.isfinite(ms):
        raise InvalidInput(field_name, "must be a number of milliseconds")
    if not 0 <= ms <= MAX_DURATION_MS:
        raise InvalidInput(field_name, f"must be 0-{MAX_DURATION_MS} ms")
    return float(ms) + 0.0  # -0.0 is a duration of 0, not one to echo and rank as -0.0


def rank(count: int, percentile: int) -> int:
    """The nearest rank (1-based) of a percentile among `count` sorted values: the smallest value
    with at least that share of the values at or below it (what percentile_disc returns)."""
    return max(1, -(-percentile * count // 100))


def nearest_rank(sorted_values: Sequence[float], percentile: int) -> float:
    return sorted_values[rank(len(sorted_values), percentile) - 1]


@dataclass(frozen=True)
class StepTimes:
    p50_ms: float
    p95_ms: float


@dataclass(frozen=True)
class PerformanceRow:
    """One type of operation of one app version (or device) in a report."""

    type: str
    group: str
    count: int
    successes: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    breakdown: dict[str, StepTimes] = field(default_factory=dict)

    @property
    def success_rate(self) -> float:
        return round(self.successes / self.count, 4) if self.count else 0.0


def percentile_rows(
    durations: dict[tuple[str, str], list[tuple[float, bool]]],
    steps: dict[tuple[str, str, str], list[float]],
) -> list[PerformanceRow]:
    """The report from every duration by (type, group) and every step time by (type, group,
    step) — for stores that hand over the values rather than the percentiles."""
    rows = []
    for (type, group), values in sorted(durations.items()):
        ms = sorted(v for v, _ in values)
        p50, p95, p99 = (nearest_rank(ms, p) for p in PERCENTILES)
        breakdown = {
            step: StepTimes(*(nearest_rank(sorted(times), p) for p in STEP_PERCENTILES))
            for (t, g, step), times in sorted(steps.items())
            if (t, g) == (type, group)
        }
        successes = sum(ok for _, ok in values)
        rows.append(
            PerformanceRow(type, group, len(ms), successes, p50, p95, p99, ms[-1], breakdown)
        )
    return rows
