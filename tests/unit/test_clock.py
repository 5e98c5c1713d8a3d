"""Instants: aware, in UTC, to the millisecond, and not far in the future."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from domain.clock import as_utc, not_in_future
from domain.errors import InvalidInput


def test_an_instant_is_kept_in_utc_to_the_millisecond() -> None:
    given = datetime(2026, 11, 24, 13, 0, 0, 123999, tzinfo=timezone(timedelta(hours=1)))

    assert as_utc("at", given) == datetime(2026, 11, 24, 12, 0, 0, 123000, tzinfo=UTC)


def test_an_instant_without_an_offset_is_invalid() -> None:
    with pytest.raises(InvalidInput, match="offset"):
        as_utc("at", datetime(2026, 11, 24, 12, 0))


def test_a_client_clock_may_run_five_minutes_ahead_but_no_more() -> None:
    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)

    assert not_in_future("at", now + timedelta(minutes=5), now) == now + timedelta(minutes=5)
    with pytest.raises(InvalidInput, match="future"):
        not_in_future("at", now + timedelta(minutes=5, seconds=1), now)


@pytest.mark.parametrize(
    "given",
    [
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5))),
        datetime(9999, 12, 31, 23, 59, tzinfo=timezone(timedelta(hours=-5))),
        datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ],
)
def test_an_instant_beyond_the_bounds_is_invalid_whatever_its_offset(given: datetime) -> None:
    # Near datetime's own limits an instant has no UTC counterpart: refused, not converted.
    with pytest.raises(InvalidInput, match="between"):
        as_utc("at", given)


def test_an_instant_in_utc_is_cut_to_the_millisecond_never_rounded() -> None:
    given = datetime(2026, 11, 24, 12, 0, 59, 999999, tzinfo=UTC)

    assert as_utc("at", given) == datetime(2026, 11, 24, 12, 0, 59, 999000, tzinfo=UTC)
