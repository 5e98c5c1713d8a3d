"""The lines `sessionmeter serve` writes: one JSON object each (a traceback is a field of it, not
lines of its own), or text with the fields as key=value; the request id of the request they were
written in."""

import json
import logging
import sys

from entrypoints.logs import JsonFormatter, TextFormatter, request_id


def record(message: str, fields: dict[str, object] | None = None) -> logging.LogRecord:
    made = logging.LogRecord("sessionmeter.test", logging.ERROR, __file__, 1, message, (), None)
    if fields is not None:
        made.fields = fields
    return made


def test_an_error_is_one_json_line_with_its_traceback_in_a_field() -> None:
    try:
        raise RuntimeError("the storage went away")
    except RuntimeError:
        failed = record("job failed", {"job": "reaper"})
        failed.exc_info = sys.exc_info()

    line = JsonFormatter().format(failed)

    assert "\n" not in line
    parsed = json.loads(line)
    assert (parsed["level"], parsed["message"], parsed["job"]) == ("error", "job failed", "reaper")
    assert parsed["traceback"].startswith("Traceback (most recent call last)")
    assert "RuntimeError: the storage went away" in parsed["traceback"]
    assert parsed["time"].endswith("+00:00")


def test_a_line_written_while_a_request_is_served_carries_its_id() -> None:
    token = request_id.set("req-7")
    try:
        inside = json.loads(JsonFormatter().format(record("slow query")))
        text = TextFormatter().format(record("slow query", {"ms": 812.5}))
    finally:
        request_id.reset(token)
    outside = json.loads(JsonFormatter().format(record("job ran")))

    assert inside["request_id"] == "req-7"
    assert text.endswith("slow query ms=812.5 request_id=req-7")
    assert "request_id" not in outside
