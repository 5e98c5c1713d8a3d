"""Reading a batch whose items are judged one by one: a bad item is reported, the others go on."""

from collections.abc import Callable
from typing import TypeVar

import msgspec

from domain.errors import InvalidInput
from entrypoints.http.errors import field_error

Body = TypeVar("Body")
Item = TypeVar("Item")


def read_items(
    raws: list[msgspec.Raw], body: type[Body], build: Callable[[Body], Item]
) -> list[Item | InvalidInput]:
    """Each item built from its body, or why it could not be. All are decoded in one pass when
    they all decode (the usual case); otherwise one by one, so that each bad one is named.
    `body` may be a domain dataclass, which judges itself as it is decoded (InvalidInput)."""
    try:
        bodies = msgspec.json.decode(b"[" + b",".join(raws) + b"]", type=list[body])  # type: ignore[valid-type]
    except (msgspec.ValidationError, InvalidInput, RecursionError):
        return [_read_item(raw, body, build) for raw in raws]
    return [_built(b, build) for b in bodies]


def _read_item(
    raw: msgspec.Raw, body: type[Body], build: Callable[[Body], Item]
) -> Item | InvalidInput:
    try:
        decoded = msgspec.json.decode(raw, type=body, strict=True)
    except msgspec.ValidationError as error:
        problem = field_error(error)
        return InvalidInput(problem["field"], problem["message"])
    except InvalidInput as error:
        return error
    except RecursionError:
        return InvalidInput("body", "JSON nested too deep")
    return _built(decoded, build)


def _built(body: Body, build: Callable[[Body], Item]) -> Item | InvalidInput:
    try:
        return build(body)
    except InvalidInput as error:
        return error
