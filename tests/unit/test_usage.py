"""Meter quantities add exactly: integers stay integers, decimals never pick up float error."""

from decimal import Decimal
from typing import Any

import pytest

from domain.errors import InvalidInput
from domain.usage import add_usage, validate_usage


def test_integers_added_to_integers_stay_integers() -> None:
    total = add_usage({"tokens": 5}, {"tokens": 7})
    assert total == {"tokens": 12} and type(total["tokens"]) is int


def test_a_decimal_added_to_an_integer_makes_the_sum_a_decimal() -> None:
    total = add_usage({"seconds": 10}, {"seconds": Decimal("0.5")})
    assert total == {"seconds": Decimal("10.5")} and isinstance(total["seconds"], Decimal)


def test_a_tenth_and_two_tenths_are_exactly_three_tenths() -> None:
    total = add_usage({"cost_usd": Decimal("0.1")}, {"cost_usd": Decimal("0.2")})
    assert total["cost_usd"] == Decimal("0.3") and str(total["cost_usd"]) == "0.3"


def test_meters_not_mentioned_are_kept_and_new_ones_start_from_zero() -> None:
    assert add_usage({"a": 1}, {"b": 2}) == {"a": 1, "b": 2}


@pytest.mark.parametrize(
    ("given", "written"),
    [
        (Decimal("1.500"), "1.5"),
        (Decimal("1E+2"), "100"),
        (Decimal("2.5000000000000"), "2.5"),  # trailing zeros are not decimal places
    ],
)
def test_decimals_are_normalised_without_trailing_zeros_or_exponents(
    given: Decimal, written: str
) -> None:
    assert str(validate_usage("usage", {"m": given})["m"]) == written


def test_sums_are_normalised_too() -> None:
    assert str(add_usage({"m": Decimal("0.5")}, {"m": Decimal("0.5")})["m"]) == "1"


def test_nine_decimal_places_are_kept_exactly() -> None:
    assert validate_usage("usage", {"m": Decimal("0.123456789")}) == {"m": Decimal("0.123456789")}


@pytest.mark.parametrize("name", ["seconds", "video.seconds", "cost_usd", "gpu-ms", "m" * 64])
def test_meter_names_are_short_lowercase_names(name: str) -> None:
    assert validate_usage("usage", {name: 1}) == {name: 1}


@pytest.mark.parametrize(
    ("usage", "field"),
    [
        ({"m": -1}, "usage.m"),
        ({"m": Decimal("-0.5")}, "usage.m"),
        ({"m": Decimal("0.0000000001")}, "usage.m"),  # 10 places
        ({"m": True}, "usage.m"),
        ({"m": 1.5}, "usage.m"),
        ({"m": "1.5"}, "usage.m"),
        ({"m": Decimal("NaN")}, "usage.m"),
        ({"m": Decimal("Infinity")}, "usage.m"),
        ({"m": 10**9}, "usage.m"),
        ({"Bad Name": 1}, "usage.Bad Name"),
        ({"": 1}, "usage."),
        ({"m" * 65: 1}, "usage." + "m" * 65),
    ],
    ids=repr,
)
def test_quantities_that_cannot_be_metered_exactly_are_refused(
    usage: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        validate_usage("usage", usage)
    assert refused.value.field == field
