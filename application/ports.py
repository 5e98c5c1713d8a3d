"""What every area shares: the clock, and the window a query covers."""

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from domain.calendar import Calendar, Period
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
    def of_days(
        cls,
        start: datetime | None,
        end: datetime | None,
        now: datetime,
        calendar: Calendar,
        days: int,
    ) -> "Window":
        """The window asked for with both bounds, by default whole days of the tenant's
        calendar: `to` by default the end of today, `from` by default the start of the day
        `days` days before `to`'s day; `from` must come before `to`."""
        asked = cls.between(start, end)
        last = asked.end or calendar.bucket(Period.DAY, now).end
        first = asked.start or calendar.shift(
            Period.DAY, calendar.start_of(Period.DAY, last), -days
        )
        if first >= last:
            raise InvalidInput("from", "must be before to")
        return cls(first, last)

    def __contains__(self, at: datetime) -> bool:
        return (self.start is None or self.start <= at) and (self.end is None or at < self.end)
