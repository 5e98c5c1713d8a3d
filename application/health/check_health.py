"""Whether the service is able to serve."""

import logging
from dataclasses import dataclass

from application.health.ports import StorageHealth
from application.storage import StorageError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckHealthQuery:
    """Nothing to say: the service checks its own storage."""


@dataclass(frozen=True)
class Health:
    storage_answers: bool  # False: the service cannot serve (the reason is logged)


class CheckHealth:
    """Is the service able to serve? It is when its storage answers."""

    def __init__(self, storage: StorageHealth) -> None:
        self._storage = storage

    async def __call__(self, query: CheckHealthQuery) -> Health:
        try:
            await self._storage.ping()
        except StorageError as error:  # what an operator fixes: a line that says why
            log.warning("storage does not answer: %s", error)
            return Health(storage_answers=False)
        except Exception:
            log.warning("storage does not answer", exc_info=True)
            return Health(storage_answers=False)
        return Health(storage_answers=True)
