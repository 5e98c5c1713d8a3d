"""The window a telemetry listing or report covers."""

from datetime import datetime

from application.ports import Window
from domain.errors import InvalidInput


def report_window(start: datetime | None, end: datetime | None) -> Window:
    """`from` inclusive, `to` exclusive, either open; `from` must come before `to`."""
    window = Window.between(start, end)
    if window.start is not None and window.end is not None and window.start >= window.end:
        raise InvalidInput("from", "must be before to")
    return window
