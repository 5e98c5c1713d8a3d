"""Is the service able to serve? It is when its storage answers."""

import logging

from application.health.ports import StorageHealth

log = logging.getLogger(__name__)


class CheckHealth:
    def __init__(self, storage: StorageHealth) -> None:
        self._storage = storage

    async def __call__(self) -> bool:
        try:
            await self._storage.ping()
        except Exception:
            log.warning("storage does not answer", exc_info=True)
            return False
        return True
