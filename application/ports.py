"""What every area shares: the clock, and the window a query covers."""

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from domain.clock import as_utc


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware UTC."""
        ...


@dataclass(frozen=True)
class Window:
    """Sessions that started (snapshots taken, …) in [start, end); either bound may be open."""

    start: datetime | None = None
    end: datetime | None = None

    @classmethod
    def between(cls, start: datetime | None, end: datetime | None) -> "Window":
        """The window a client asked for with `from` and `to`, both with an offset."""
        return cls(start and as_utc("from", start), end and as_utc("to", end))

    def __contains__(self, at: datetime) -> bool:
        return (self.start is None or self.start <= at) and (self.end is None or at < self.end)
