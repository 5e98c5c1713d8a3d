"""Visits written through the use cases, for the CLI's reports to read."""

from datetime import UTC, datetime, timedelta

from application.sessions.record_exit import RecordExitCommand
from application.sessions.start_session import StartSessionCommand
from domain.session import SessionRequest
from entrypoints.container import build_container
from entrypoints.lifespan import storage_opened
from entrypoints.settings import Settings
from tests.conftest import run_async


def viewers_of_launch(url: str, minutes_of: dict[str, int]) -> None:
    """Each subject watched acme's webinar `launch` for its minutes, from an hour ago."""
    container = build_container(Settings(storage_url=url))
    start = datetime.now(UTC) - timedelta(hours=1)

    async def visits() -> None:
        async with storage_opened(container):
            tenant = await container.storage.tenants().get_by_name("acme")
            for subject, minutes in minutes_of.items():
                request = SessionRequest("webinar", "launch", subject, started_at=start)
                started = await container.use_cases.start_session()(
                    StartSessionCommand(tenant.id, request)
                )
                end = start + timedelta(minutes=minutes)
                await container.use_cases.record_exit()(
                    RecordExitCommand(tenant.id, started.session.id, at=end)
                )

    run_async(visits)
