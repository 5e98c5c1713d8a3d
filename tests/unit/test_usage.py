from decimal import Decimal

import pytest

from domain.errors import InvalidInput
from domain.usage import add_usage, validate_usage


def test_integers_stay_integers_and_decimals_add_exactly() -> None:
    total = add_usage({"tokens": 5}, {"tokens": 7})
    assert total == {"tokens": 12} and isinstance(total["tokens"], int)

    cost = add_usage({"cost_usd": Decimal("0.1")}, {"cost_usd": Decimal("0.2")})
    assert cost == {"cost_usd": Decimal("0.3")} and str(cost["cost_usd"]) == "0.3"

    mixed = add_usage({"seconds": 10}, {"seconds": Decimal("0.5")})
    assert mixed == {"seconds": Decimal("10.5")}


def test_decimals_are_normalised_without_exponents() -> None:
    assert str(validate_usage("usage", {"m": Decimal("1.500")})["m"]) == "1.5"
    assert str(validate_usage("usage", {"m": Decimal("1E+2")})["m"]) == "100"


@pytest.mark.parametrize(
    ("usage", "field"),
    [
        ({"m": -1}, "usage.m"),
        ({"m": Decimal("0.0000000001")}, "usage.m"),
        ({"m": True}, "usage.m"),
        ({"m": 1.5}, "usage.m"),
        ({"m": Decimal("NaN")}, "usage.m"),
        ({"m": 10**9}, "usage.m"),
        ({"Bad Name": 1}, "usage.Bad Name"),
    ],
)
def test_quantities_that_cannot_be_metered_exactly_are_refused(usage: dict, field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        validate_usage("usage", usage)
    assert refused.value.field == field
