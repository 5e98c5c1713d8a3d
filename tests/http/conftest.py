"""The HTTP suite runs on the API's backends (tests/conftest.py API_BACKENDS)."""

from typing import Any

import pytest
from litestar._kwargs.kwargs_model import KwargsModel
from litestar.connection import ASGIConnection

from application.livekit.add_livekit_account import AddLiveKitAccountCommand
from tests.app_client import Api
from tests.conftest import api_storage_url  # noqa: F401 (the storage_url fixture of this suite)
from tests.livekit_server import LiveKitServer


@pytest.fixture
def kwargs_built(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths of the requests whose arguments Litestar's kwargs model built, in order (not
    those of handlers called directly, entrypoints/http/called_directly.py)."""
    built: list[str] = []
    original = KwargsModel.to_kwargs

    async def counted(self: KwargsModel, connection: ASGIConnection[Any, Any, Any, Any]) -> Any:
        built.append(connection.scope["path"])
        return await original(self, connection)

    monkeypatch.setattr(KwargsModel, "to_kwargs", counted)
    return built


@pytest.fixture
def livekit(api: Api) -> LiveKitServer:
    """A LiveKit server whose API key the tenant registered: its signed webhooks are received."""
    server = LiveKitServer()
    command = AddLiveKitAccountCommand("acme", server.key, server.secret)
    api.run(lambda: api.container.use_cases.add_livekit_account()(command))
    return server
