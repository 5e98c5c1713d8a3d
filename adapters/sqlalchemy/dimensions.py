"""A session's attribute as a dimension's value in SQL: what rollups group by and the sessions
list filters on, so both spell a value alike."""

from typing import Any

from sqlalchemy import ColumnElement, String, case, func, type_coerce

from adapters.sqlalchemy.tables import sessions


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
