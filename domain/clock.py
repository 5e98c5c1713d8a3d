"""Time rules shared by every entity: aware UTC instants to the millisecond, bounded client clock
skew."""

from datetime import UTC, datetime, timedelta

from domain.errors import InvalidInput

# A client clock may run ahead of ours by this much; beyond it a timestamp is a mistake.
MAX_FUTURE_SKEW = timedelta(minutes=5)


def to_the_millisecond(at: datetime) -> datetime:
    """Instants are kept to the millisecond: MongoDB's dates hold no more, and every store must
    give the same answers (a tenant moved between stores keeps its figures)."""
    return at.replace(microsecond=at.microsecond - at.microsecond % 1000)


def as_utc(field: str, at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise InvalidInput(field, "timestamp must carry a UTC offset")
    return to_the_millisecond(at.astimezone(UTC))


def not_in_future(field: str, at: datetime, now: datetime) -> datetime:
    at = as_utc(field, at)
    if at > now + MAX_FUTURE_SKEW:
        raise InvalidInput(field, "is more than 5 minutes in the future")
    return at
