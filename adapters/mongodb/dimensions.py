"""A session's attribute as a dimension's value in MongoDB: what rollups group by and the
sessions list filters on, so both spell a value alike."""

from collections.abc import Mapping

from adapters.mongodb.documents import Document


def dimension(key: str) -> Document:
    """An aggregation expression: a session's attribute as domain.rollups.dimensions_of spells
    it, a string as it is, a number or boolean as JSON spells it (true, 3, 1.5); missing stays
    null. $getField, as a key may hold dots or start with $."""
    value = {"$getField": {"field": {"$literal": key}, "input": "$attributes"}}
    as_text = {"$toString": value}
    return {"$cond": [{"$eq": [{"$type": value}, "string"]}, value, as_text]}


def having(values: Mapping[str, str]) -> Document:
    """A match on sessions whose dimensions have these values (empty: every session). Missing,
    a dimension is null: never equal to a value. $literal, as a value may start with $ (it would
    name a field)."""
    if not values:
        return {}
    equal = [{"$eq": [dimension(key), {"$literal": value}]} for key, value in values.items()]
    return {"$expr": {"$and": equal}}
