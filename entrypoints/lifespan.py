"""How the server and the CLI hold the storage: opened once, closed however their work ends."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from entrypoints.container import Container


@asynccontextmanager
async def storage_opened(container: Container) -> AsyncIterator[Container]:
    """The configured storage opened (engine, pool or client) for the life of a server or a
    command, and closed afterwards, so no connection outlives its event loop."""
    container.storage.backend()
    try:
        yield container
    finally:
        await container.storage.backend().close()
