"""Driver errors leave an adapter as the application's StorageError, at the edge of its methods.

Each storage family names the driver errors it translates (adapters/<family>/errors.py) and
decorates its adapter classes with the result. The translation wraps each public method as a
whole, so what a method catches itself (a duplicate key meaning "already stored") never
reaches it.
"""

import functools
import inspect
from collections.abc import AsyncGenerator, Callable, Coroutine
from contextlib import aclosing
from typing import Any, ParamSpec, TypeVar

from application.storage import StorageError

AdapterClass = TypeVar("AdapterClass", bound=type)
P = ParamSpec("P")
R = TypeVar("R")
DriverErrors = tuple[type[Exception], ...]
MUTMUT_COPY = "__mutmut_"
TRANSLATED = "_translates_driver_errors"  # set on the methods this module wraps


def first_line(error: Exception) -> str:
    # The driver's first line says what failed; the SQL and parameters after it are for
    # developers, who find them on the chained cause.
    return (str(error).strip() or type(error).__name__).splitlines()[0]


def translating(
    *driver_errors: type[Exception], describe: Callable[[Exception], str] = first_line
) -> Callable[[AdapterClass], AdapterClass]:
    """A class decorator: where one of `driver_errors` escapes a public async method (or async
    generator) of the class, its own or inherited from a base that is not decorated, StorageError
    is raised from it instead, saying what `describe` makes of the driver's error."""

    def translate(cls: AdapterClass) -> AdapterClass:
        for name in dir(cls):
            # Private, or mutmut's copy of a method (`make mutants`: `xǁClassǁ_name__mutmut_1`),
            # which a method of the class calls: translated there, a driver error would reach
            # the public method already as StorageError.
            if name.startswith("_") or MUTMUT_COPY in name:
                continue
            member = inspect.getattr_static(cls, name)
            if getattr(member, TRANSLATED, False):  # a decorated base's
                continue
            if inspect.iscoroutinefunction(member):
                setattr(cls, name, _coroutine(member, driver_errors, describe))
            elif inspect.isasyncgenfunction(member):
                setattr(cls, name, _generator(member, driver_errors, describe))
        return cls

    return translate


def _coroutine(
    method: Callable[P, Coroutine[Any, Any, R]],
    driver_errors: DriverErrors,
    describe: Callable[[Exception], str],
) -> Callable[P, Coroutine[Any, Any, R]]:
    @functools.wraps(method)
    async def translated(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except driver_errors as error:
            raise StorageError(describe(error)) from error

    setattr(translated, TRANSLATED, True)
    return translated


def _generator(
    method: Callable[P, AsyncGenerator[R, None]],
    driver_errors: DriverErrors,
    describe: Callable[[Exception], str],
) -> Callable[P, AsyncGenerator[R, None]]:
    @functools.wraps(method)
    async def translated(*args: P.args, **kwargs: P.kwargs) -> AsyncGenerator[R, None]:
        try:
            # A consumer that stops early closes the method's generator too, at once, so that
            # the cursor or connection it holds is released in this task.
            async with aclosing(method(*args, **kwargs)) as items:
                async for item in items:
                    yield item
        except driver_errors as error:
            raise StorageError(describe(error)) from error

    setattr(translated, TRANSLATED, True)
    return translated
