"""What the OpenAPI schema says of a route besides its types and errors."""

import inspect
import sys


def rules_of(use_case: type) -> str:
    """A route's description: the rules of the use case it calls, as its docstring states them
    (or its module's, for a use case that leaves them there)."""
    doc = use_case.__doc__ or sys.modules[use_case.__module__].__doc__
    if not doc:
        raise TypeError(f"{use_case.__qualname__} has no docstring to describe its route")
    return inspect.cleandoc(doc)
