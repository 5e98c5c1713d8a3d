"""Meter quantities: exact integers or decimals, never floats.

A session's usage maps meter names (`seconds`, `tokens`, `cost_usd`, `video.seconds` …) to the sum
of what its events and its exit reported. Integers stay integers; once a decimal is added the sum
is a decimal. Decimals carry at most nine places so every store can hold them exactly.
"""

import re
from collections.abc import Mapping
from decimal import Decimal

from domain.errors import InvalidInput

Quantity = int | Decimal
Usage = dict[str, Quantity]

METER_NAME = re.compile(r"[a-z0-9_.-]{1,64}\Z")  # with .match; \Z, since $ takes a final \n
MAX_DECIMAL_PLACES = 9
# A quantity, and a session's total of a meter, stay below a billion units: stores keeping
# nano-units in 64 bits hold them, and prices computed from them stay far from 64-bit limits.
MAX_QUANTITY = 10**9


def normalize(q: Quantity) -> Quantity:
    """Canonical form: ints as they are, decimals without trailing zeros or exponent."""
    if isinstance(q, int):
        return q
    return Decimal(format(q.normalize(), "f"))


# Meter names found valid: every event of a batch names the same few, and a set lookup is cheaper
# than the regex (validate_usage of one meter: 365-375 ns against 560-590). Bounded, so that
# names a client makes up cannot fill the memory.
_VALID_NAMES: set[str] = set()
_MAX_VALID_NAMES = 10_000


def validate_usage(field: str, usage: Mapping[str, Quantity]) -> Usage:
    checked: Usage = {}
    for meter, quantity in usage.items():
        if meter not in _VALID_NAMES:
            if not METER_NAME.match(meter):
                raise InvalidInput(
                    f"{field}.{meter}", "meter names are 1-64 characters of a-z 0-9 _ . -"
                )
            if len(_VALID_NAMES) < _MAX_VALID_NAMES:
                _VALID_NAMES.add(meter)
        if type(quantity) is int and 0 <= quantity < MAX_QUANTITY:  # the usual case, at once
            checked[meter] = quantity
            continue
        checked[meter] = _checked_quantity(f"{field}.{meter}", quantity)
    return checked


def _checked_quantity(where: str, quantity: Quantity) -> Quantity:
    if isinstance(quantity, bool) or not isinstance(quantity, int | Decimal):
        raise InvalidInput(where, "must be an integer or a decimal")
    if isinstance(quantity, Decimal) and not quantity.is_finite():
        raise InvalidInput(where, "must be a finite number")
    # The range first: normalizing a decimal far above it (1e999999999) overflows.
    if quantity < 0:
        raise InvalidInput(where, "must not be negative")
    if quantity >= MAX_QUANTITY:
        raise InvalidInput(where, f"must be below {MAX_QUANTITY}")
    if isinstance(quantity, Decimal) and decimal_places(quantity) > MAX_DECIMAL_PLACES:
        raise InvalidInput(where, f"at most {MAX_DECIMAL_PLACES} decimal places")
    return normalize(quantity)


def decimal_places(quantity: Decimal) -> int:
    """Decimal places of a finite decimal once its trailing zeros go, read from its digits:
    Decimal.normalize rounds a quantity far below the context's range (1e-999999999) to 0."""
    _, digits, exponent = quantity.as_tuple()
    assert isinstance(exponent, int), "a finite decimal"
    trailing_zeros = len(digits) - len(bytes(digits).rstrip(b"\0"))
    if trailing_zeros == len(digits):
        return 0  # zero
    return max(0, -(exponent + trailing_zeros))


def add_usage(usage: Mapping[str, Quantity], more: Mapping[str, Quantity]) -> Usage:
    total: Usage = dict(usage)
    add_into(total, more)
    return total


def add_into(total: Usage, more: Mapping[str, Quantity]) -> None:
    """`more` added to `total` in place: for sums over many events, without a copy each."""
    for meter, quantity in more.items():
        added = total.get(meter, 0) + quantity
        total[meter] = added if type(added) is int else normalize(added)  # ints: no call


def over_the_limit(total: Mapping[str, Quantity], more: Mapping[str, Quantity]) -> str | None:
    """The first meter of `more` whose total would reach MAX_QUANTITY with it, if any."""
    for meter, quantity in more.items():
        if total.get(meter, 0) + quantity >= MAX_QUANTITY:
            return meter
    return None
