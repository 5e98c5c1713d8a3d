"""A handler's dependencies resolved one after the other, not each in a task of its own.

Litestar resolves the dependencies of one level of a handler's graph concurrently, in an anyio
task group (litestar-org/litestar#4563: a second dependency costs a third of the requests per
second). Ours never wait on anything: the principal the guard found, a use case from the
container, the metrics. For them the task group was all cost, a fifth of the CPU of a session's
start and exit. So the app resolves each level in order, as FastAPI does.

This replaces `KwargsModel.resolve_dependencies`, a private method of the Litestar pinned in
requirements.lock; tests/http/test_dependencies_in_order.py fails if an upgrade moves it.
"""

from typing import Any

from litestar._kwargs.cleanup import DependencyCleanupGroup
from litestar._kwargs.dependencies import resolve_dependency
from litestar._kwargs.kwargs_model import KwargsModel
from litestar.connection import ASGIConnection


async def _resolve_in_order(
    self: KwargsModel, connection: ASGIConnection[Any, Any, Any, Any], kwargs: dict[str, Any]
) -> DependencyCleanupGroup:
    cleanup_group = DependencyCleanupGroup()
    for batch in self.dependency_batches:
        for dependency in batch:
            await resolve_dependency(dependency, connection, kwargs, cleanup_group)
    return cleanup_group


def resolve_dependencies_in_order() -> None:
    KwargsModel.resolve_dependencies = _resolve_in_order  # type: ignore[method-assign]
