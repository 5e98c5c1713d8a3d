"""What the OpenAPI schema says of a route besides its types and errors."""

import inspect


def rules_of(use_case: type) -> str:
    """A route's description: the rules of the use case it calls, as its class docstring states
    them (a use case without one fails at import, not in the served schema)."""
    if not use_case.__doc__:
        raise TypeError(f"{use_case.__qualname__} has no docstring to describe its route")
    return inspect.cleandoc(use_case.__doc__)
