"""Where a listing in the order of two columns resumes: the rows past the last one it gave."""

from typing import Any

from sqlalchemy import ColumnElement, and_, or_


def past(
    first: Any, second: Any, place: tuple[Any, Any], descending: bool = False
) -> ColumnElement[bool]:
    """The rows after `place` (before it, if `descending`) in the order of (first, second)."""
    at_first, at_second = place
    if descending:
        return or_(first < at_first, and_(first == at_first, second < at_second))
    return or_(first > at_first, and_(first == at_first, second > at_second))
