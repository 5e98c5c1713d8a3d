"""Resource snapshots: what a media server (or any machine) reported about itself at an instant.

Traffic arrives as a counter of bytes sent since some start, which may reset (a monthly reset,
a restart). What a period used is the counter's delta against the previous snapshot of the same
source; a counter that went down was reset, and the delta is then the new value.
"""

from dataclasses import dataclass
from datetime import datetime

from domain.clock import as_utc
from domain.errors import InvalidInput
from domain.text import check_text

MAX_COUNT = 10**9  # users and rooms: SQL keeps them as 32-bit integers


@dataclass(frozen=True)
class Snapshot:
    source: str
    at: datetime
    cpu_percent: float
    memory_percent: float
    memory_mb: float
    traffic_bytes_total: int
    concurrent_users: int
    active_rooms: int

    def __post_init__(self) -> None:
        check_text("source", self.source, 200)
        if not self.source:
            raise InvalidInput("source", "must not be empty")
        object.__setattr__(self, "at", as_utc("at", self.at))
        for name in ("cpu_percent", "memory_percent"):
            if not 0 <= getattr(self, name) <= 100:
                raise InvalidInput(name, "must be 0-100")
        for name in ("memory_mb", "traffic_bytes_total", "concurrent_users", "active_rooms"):
            if getattr(self, name) < 0:
                raise InvalidInput(name, "must not be negative")
        if self.traffic_bytes_total >= 2**63:
            raise InvalidInput("traffic_bytes_total", "must be below 2^63")
        for name in ("concurrent_users", "active_rooms"):
            if getattr(self, name) > MAX_COUNT:
                raise InvalidInput(name, f"must be at most {MAX_COUNT}")


@dataclass(frozen=True)
class MeasuredSnapshot:
    """A stored snapshot with the traffic since the previous one of its source."""

    snapshot: Snapshot
    traffic_bytes: int


def traffic_delta(previous_total: int | None, total: int) -> int:
    """Bytes since the previous reading; the first reading of a source has no delta."""
    if previous_total is None:
        return 0
    return total - previous_total if total >= previous_total else total
