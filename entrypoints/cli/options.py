"""Options and parameter types that several commands take."""

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import click

Decorated = TypeVar("Decorated", bound=Callable[..., Any])


def tenant_option(*, required: bool) -> Callable[[Decorated], Decorated]:
    """--tenant NAME, passed as `tenant_name`: a command either needs it, or serves every tenant
    without it."""
    return click.option(
        "--tenant",
        "tenant_name",
        required=required,
        help=None if required else "Only this tenant (default: every tenant).",
    )


class Instant(click.ParamType[datetime]):
    """An RFC 3339 timestamp with its UTC offset."""

    name = "TIMESTAMP"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            at = datetime.fromisoformat(str(value))
        except ValueError:
            self.fail(f"{value!r} is not an RFC 3339 timestamp", param, ctx)
        if at.tzinfo is None:
            self.fail(f"{value!r} needs a UTC offset (Z or +HH:MM)", param, ctx)
        return at


INSTANT = Instant()
