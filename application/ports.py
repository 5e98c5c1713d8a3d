"""What every area shares: the clock, and the window a query covers."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from domain.clock import as_utc
from domain.errors import InvalidInput


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

    @classmethod
    def closed(
        cls, start: datetime | None, end: datetime | None, now: datetime, span: timedelta
    ) -> "Window":
        """The window asked for with both bounds: `to` by default now, `from` by default `span`
        before `to`; `from` must come before `to`."""
        asked = cls.between(start, end)
        last = asked.end or now
        first = asked.start or last - span
        if first >= last:
            raise InvalidInput("from", "must be before to")
        return cls(first, last)

    def __contains__(self, at: datetime) -> bool:
        return (self.start is None or self.start <= at) and (self.end is None or at < self.end)
