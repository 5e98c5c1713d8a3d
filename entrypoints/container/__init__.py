"""The composition root: the only place that chooses concrete classes and builds use cases.

Split by concern: `storage` (the family chosen by the URL scheme of SESSIONMETER_STORAGE_URL and
its repositories), `outside` (clock, LiveKit), `use_cases` and `jobs` (the background jobs). Use
cases receive the repositories of whichever family was chosen and never know which one it is.
Tests override a provider (`container.outside.clock`, `container.storage.backend`) and everything
built after that uses the override.
"""

from dependency_injector import containers, providers

from entrypoints.container.jobs import JobContainer
from entrypoints.container.outside import OutsideContainer
from entrypoints.container.storage import StorageContainer
from entrypoints.container.use_cases import UseCaseContainer
from entrypoints.settings import Settings


class Container(containers.DeclarativeContainer):
    config = providers.Configuration()

    storage = providers.Container(StorageContainer, config=config.storage)
    outside = providers.Container(OutsideContainer)
    use_cases = providers.Container(UseCaseContainer, storage=storage, outside=outside)
    jobs = providers.Container(JobContainer, storage=storage, outside=outside, use_cases=use_cases)


def build_container(settings: Settings) -> Container:
    container = Container()
    container.config.from_dict({"storage": storage_config(settings)})
    return container


def storage_config(settings: Settings) -> dict[str, object]:
    """What the storage container (StorageContainer.config) is configured with."""
    return {
        "family": settings.storage_family,
        "url": settings.storage_url,
        "postgres_connections": settings.postgres_connections,
        "wait_seconds": settings.storage_wait_seconds,
        "serving": settings.serving,
    }
