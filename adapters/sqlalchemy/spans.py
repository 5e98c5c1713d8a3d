"""Time arithmetic in SQL, as each dialect does it cheaply."""

from typing import Any

from sqlalchemy import Float, func, literal_column
from sqlalchemy.ext.asyncio import AsyncEngine


class Spans:
    def __init__(self, engine: AsyncEngine) -> None:
        self._sqlite = engine.dialect.name == "sqlite"

    def span(self, start: Any, end: Any) -> Any:
        """end - start, as the dialect sums it cheaply: an interval on PostgreSQL (turned into
        seconds once per group by `seconds`, not per row), seconds on SQLite."""
        if self._sqlite:
            return (func.julianday(end) - func.julianday(start)) * 86400.0
        return end - start

    def seconds(self, spans: Any) -> Any:
        """A sum of spans in seconds, as a double: Decimals would cost more than the query."""
        if self._sqlite:
            return spans
        return func.date_part(literal_column("'epoch'"), spans, type_=Float)

    def later(self, a: Any, b: Any) -> Any:
        return func.max(a, b) if self._sqlite else func.greatest(a, b)

    def earlier(self, a: Any, b: Any) -> Any:
        return func.min(a, b) if self._sqlite else func.least(a, b)
