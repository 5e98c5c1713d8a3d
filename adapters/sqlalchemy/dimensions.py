"""A session's attribute as a dimension's value in SQL: what rollups group by and the sessions
list filters on, so both spell a value alike; and a rollup row's values as the text it keeps."""

import json
from collections.abc import Iterator, Mapping
from typing import Any

from sqlalchemy import ColumnElement, String, case, func, type_coerce

from adapters.sqlalchemy.tables import sessions
from domain.rollups import Dimensions


def dimension(key: str, sqlite: bool) -> ColumnElement[Any]:
    """A session's attribute as domain.rollups.dimensions_of spells it: a string as it is,
    anything else as its JSON text; NULL without it."""
    attributes = sessions.c.attributes
    if sqlite:
        path = f'$."{key}"'  # dimension keys hold no quotes (domain.tenants.ATTRIBUTE_NAME)
        kind = func.json_type(attributes, path)
        value = case(
            (kind == "text", func.json_extract(attributes, path)),
            (kind != "null", attributes.op("->")(path)),  # JSON text
        )
        return type_coerce(value, String)  # text, not JSON to decode
    text: ColumnElement[Any] = attributes[key].as_string()
    return text


def dimensions_text(dimensions: Dimensions) -> str:
    """A rollup row's dimension values as its `dimensions` column keeps them: JSON text of
    [[key, value], …] by key, "" for none."""
    return json.dumps(dimensions) if dimensions else ""


def dimensions_of_text(text: str) -> Dimensions:
    return tuple((k, v) for k, v in json.loads(text or "[]"))


def having_values(column: Any, values: Mapping[str, str]) -> Iterator[ColumnElement[bool]]:
    """Rows whose `dimensions` text has these values. A pair's own text, quotes escaped inside
    its strings, appears in the text only as that pair."""
    for pair in values.items():
        yield column.contains(json.dumps(list(pair)), autoescape=True)
