"""The daily summary: what each store (a resource, or a value of a declared dimension) did on one
day of the tenant's calendar, read from that day's rollup."""

from dataclasses import dataclass
from decimal import Decimal

from domain.calendar import Bucket
from domain.funnels import ratio
from domain.reports import to_the_millisecond
from domain.rollups import UsageFigures
from domain.session import SessionStatus


@dataclass(frozen=True)
class CurrencySales:
    count: int  # completed sales
    net: Decimal  # their net, less the refunds'


@dataclass(frozen=True)
class DailyFigures:
    group: str | None  # the resource, or the dimension's value (None: sessions without it)
    sessions_started: int
    sessions_ended: int  # whenever they started
    completed: int
    abandoned: int
    timed_out: int
    events: int
    ended_seconds: float  # of the sessions that ended, from start to end
    errors: int  # device errors naming the group's sessions
    fatal_errors: int
    sales: dict[str, CurrencySales]  # per currency
    # Of the group's sessions of the funnel's kind started that day, the share that reached its
    # last stage (None: no funnel applies, or no such session).
    funnel_conversion: float | None = None

    @classmethod
    def of(cls, figures: UsageFigures) -> "DailyFigures":
        a = figures.activity
        ended = a.ended_statuses
        return cls(
            figures.group,
            a.sessions_started,
            a.sessions_ended,
            ended.get(SessionStatus.COMPLETED, 0),
            ended.get(SessionStatus.ABANDONED, 0),
            ended.get(SessionStatus.TIMED_OUT, 0),
            a.events,
            a.ended_seconds,
            a.errors,
            a.fatal_errors,
            {
                currency: CurrencySales(a.sales.get(currency, 0), net)
                for currency, net in sorted(a.sales_net.items())
            },
        )

    @property
    def completion_rate(self) -> float | None:
        """Completed among the sessions that ended (4 places; None when none did)."""
        return ratio(self.completed, self.sessions_ended)

    @property
    def average_duration_seconds(self) -> float | None:
        """Of the sessions that ended, to the millisecond (None when none did)."""
        if not self.sessions_ended:
            return None
        return to_the_millisecond(self.ended_seconds / self.sessions_ended)


@dataclass(frozen=True)
class DailySummary:
    day: Bucket
    groups: list[DailyFigures]
    funnel: str | None = None  # the funnel whose conversion the groups give
