"""Meter quantities as stored: integer nano-units, so that sums stay exact on every SQL engine."""

from decimal import Decimal

from domain.usage import Quantity, normalize

NANOS = 10**9


def to_nanos(quantity: Quantity) -> int:
    return int(Decimal(quantity).scaleb(9))


def from_nanos(nanos: int, is_decimal: bool) -> Quantity:
    if not is_decimal:
        return nanos // NANOS
    return normalize(Decimal(nanos).scaleb(-9))


def to_json(meters: dict[str, Quantity]) -> dict[str, int | str]:
    """Event meters in a JSON column: decimals as strings, so they come back exact."""
    return {m: q if isinstance(q, int) else str(q) for m, q in meters.items()}


def from_json(meters: dict[str, int | str] | None) -> dict[str, Quantity]:
    return {m: q if isinstance(q, int) else Decimal(q) for m, q in (meters or {}).items()}
