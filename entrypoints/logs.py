"""How the server logs: one line per record, as JSON (for a log pipeline) or as text (for a
person at a terminal), with the request id of the request it was written in.

The standard library's `logging`, not structlog: one dependency less, and uvicorn already logs
through `logging`, so its lines and ours go through the same handler and format. Fields a line
carries besides its message are passed as `extra={"fields": {...}}`; a line never carries an API
key, a secret, a token or a request body: callers pass counts, ids and names only.
"""

import json
import logging
import sys
import traceback
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

LogFormat = Literal["json", "text"]
FORMATS: tuple[LogFormat, ...] = ("json", "text")
# The id of the request being served, if any: set per request (each runs in a task of its own,
# so the value does not leak between requests), read by every line logged while it is served.
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


def default_format() -> LogFormat:
    """Text for a person reading a terminal, JSON for whatever collects the output."""
    return "text" if sys.stderr.isatty() else "json"


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    fields: dict[str, Any] = getattr(record, "fields", None) or {}
    rid = request_id.get()
    return (
        {**fields, "request_id": rid} if rid is not None and "request_id" not in fields else fields
    )


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, the line's fields, and the
    traceback of an error as a field of its own (never lines of text of their own)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **fields_of(record),
        }
        if record.exc_info:
            line["traceback"] = "".join(traceback.format_exception(*record.exc_info))
        return json.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """A line for a person: time, level, message, then the fields as key=value."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        text = super().formatMessage(record)
        fields = fields_of(record)
        return text + "".join(f" {k}={v}" for k, v in fields.items()) if fields else text


def logging_config(log_format: LogFormat, level: str) -> dict[str, Any]:
    """A `logging.config.dictConfig` for uvicorn to apply in every worker: every logger, uvicorn's
    included, writes to standard error through the one formatter chosen."""
    formatter = JsonFormatter if log_format == "json" else TextFormatter
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"chosen": {"()": f"{formatter.__module__}.{formatter.__qualname__}"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "chosen",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": level.upper()},
        # uvicorn's loggers have handlers of their own unless told otherwise; through the root
        # they take the chosen format.
        "loggers": {
            name: {"handlers": [], "propagate": True}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
        },
    }
