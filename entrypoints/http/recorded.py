"""How the endpoints that record telemetry answer: one record (201 new, 200 replay) or a batch
(200 with what became of each), and the errors they document."""

from collections.abc import Callable
from typing import TypeVar

from litestar import Response

from application.telemetry.ports import Record
from application.telemetry.recorded import Recorded
from entrypoints.http.auth import AUTH, OUT_OF_SCOPE

Out = TypeVar("Out")

ONE = {
    401: AUTH,
    403: OUT_OF_SCOPE,
    409: "the id was stored with other content",
    422: "a field is invalid (named in `fields`), or the session it names does not exist",
}
BATCH = {
    401: AUTH,
    403: OUT_OF_SCOPE + " (a device's key sends only its own records)",
    413: "more than 100 items in the batch",
    422: "the body is not an object with the list",
}


def created_or_replayed(recorded: Recorded[Record], out: Callable[[Record], Out]) -> Response[Out]:
    """The stored record: 201 when this request stored it, 200 when it was stored before."""
    record = recorded.only()
    return Response(out(record), status_code=201 if recorded.inserted else 200)
