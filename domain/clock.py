"""Time rules shared by every entity: aware UTC instants to the millisecond, within bounds every
store and every computation on them can hold, bounded client clock skew, and how late data may
come."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from domain.errors import InvalidInput, Late

# A client clock may run ahead of ours by this much; beyond it a timestamp is a mistake.
MAX_FUTURE_SKEW = timedelta(minutes=5)
# No instant a client sends lies outside these: nothing metered happened before 2000, and dates
# set ahead (a subscription's end) stay far from the limits of the stores and of date arithmetic
# (PostgreSQL stored 0001-01-01 as -infinity; a rollup of it overflowed).
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2999, 12, 31, tzinfo=UTC)


# Each part of a millisecond, made once: subtracting one is a tenth of the cost of
# `datetime.replace` (every event's instant goes through here).
_UNDER_A_MILLISECOND = tuple(timedelta(microseconds=n) for n in range(1000))


def to_the_millisecond(at: datetime) -> datetime:
    """Instants are kept to the millisecond: MongoDB's dates hold no more, and every store must
    give the same answers (a tenant moved between stores keeps its figures)."""
    extra = at.microsecond % 1000
    # Never crosses a second, so the same as replacing the microseconds, in any time zone.
    return at - _UNDER_A_MILLISECOND[extra] if extra else at


def as_utc(field: str, at: datetime) -> datetime:
    utc = at.tzinfo is UTC
    if not utc and (at.tzinfo is None or at.utcoffset() is None):
        raise InvalidInput(field, "timestamp must carry a UTC offset")
    # Before converting: an instant near datetime's limits has no UTC counterpart.
    if not EARLIEST <= at <= LATEST:
        raise InvalidInput(field, "must lie between 2000-01-01 and 2999-12-31")
    return to_the_millisecond(at if utc else at.astimezone(UTC))


IN_THE_FUTURE = "is more than 5 minutes in the future"


def not_in_future(field: str, at: datetime, now: datetime) -> datetime:
    at = as_utc(field, at)
    if at > now + MAX_FUTURE_SKEW:
        raise InvalidInput(field, IN_THE_FUTURE)
    return at


def happened(field: str, at: datetime, now: datetime, window: timedelta) -> datetime:
    """An instant at which something happened: not in the future (beyond the skew), and not so
    long ago that data about it is no longer taken (Late)."""
    return happened_by(now, window)(field, at)


def happened_by(now: datetime, window: timedelta) -> Callable[[str, datetime], datetime]:
    """`happened` for many instants judged at one `now` (a batch's events): its bounds are
    worked out once."""
    # No instant is earlier than EARLIEST: a longer window changes nothing, and might not fit
    # in a datetime.
    earliest, latest = now - min(window, now - EARLIEST), now + MAX_FUTURE_SKEW

    def judged(field: str, at: datetime) -> datetime:
        at = as_utc(field, at)
        if at > latest:
            raise InvalidInput(field, IN_THE_FUTURE)
        if at < earliest:
            raise Late(field, f"is more than {_span(window)} ago, beyond the late-data window")
        return at

    return judged


def _span(window: timedelta) -> str:
    seconds = int(window.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0 and seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds} seconds"
