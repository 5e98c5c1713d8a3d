"""Text and JSON documents a client sends: bounded, and storable by every store as sent (no NUL
characters, which PostgreSQL refuses; no integer beyond 64 bits, which MongoDB cannot hold; no
float that is not finite, which JSON cannot say)."""

import math
from typing import Any

from domain.errors import InvalidInput

MAX_JSON_DEPTH = 32
MIN_INT64, MAX_INT64 = -(2**63), 2**63 - 1


def check_text(field: str, value: str, max_length: int) -> str:
    if not 1 <= len(value) <= max_length:
        raise InvalidInput(field, f"must be 1-{max_length} characters")
    return check_no_nul(field, value)


def check_no_nul(field: str, value: str) -> str:
    if "\x00" in value:
        raise InvalidInput(field, "must not contain NUL characters")
    return value


def check_json(field: str, value: Any, depth: int = 0) -> Any:
    """A JSON value (object, array, string, number, bool, null) every store keeps as sent."""
    if depth > MAX_JSON_DEPTH:
        raise InvalidInput(field, f"nests deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                raise InvalidInput(field, "keys must not contain NUL characters")
            check_json(f"{field}.{key}", item, depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_json(f"{field}[{index}]", item, depth + 1)
    elif isinstance(value, str):
        if "\x00" in value:
            raise InvalidInput(field, "must not contain NUL characters")
    elif isinstance(value, bool) or value is None:
        pass
    elif isinstance(value, int):
        if not MIN_INT64 <= value <= MAX_INT64:
            raise InvalidInput(field, "integers must fit in 64 bits (signed)")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInput(field, "numbers must be finite")
    else:
        raise InvalidInput(field, "is not a JSON value")
    return value


MAX_ATTRIBUTES = 50
MAX_ATTRIBUTE_KEY = 64
MAX_ATTRIBUTE_TEXT = 1000


def check_attributes(field: str, attributes: dict[str, Any]) -> dict[str, Any]:
    """A flat map of short names to strings, numbers or booleans: what reports group by."""
    if len(attributes) > MAX_ATTRIBUTES:
        raise InvalidInput(field, f"at most {MAX_ATTRIBUTES} attributes")
    for key, value in attributes.items():
        check_text(f"{field} keys", key, MAX_ATTRIBUTE_KEY)
        if isinstance(value, str):
            check_text(f"{field}.{key}", value, MAX_ATTRIBUTE_TEXT)
        elif not isinstance(value, bool | int | float):
            raise InvalidInput(f"{field}.{key}", "must be a string, number or boolean")
        else:
            check_json(f"{field}.{key}", value)
    return attributes
