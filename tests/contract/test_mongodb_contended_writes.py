"""MongoDB: a session's heartbeat or close that loses to other writers ATTEMPTS times in a row
gives up with Contended (HTTP answers it 503 with Retry-After: send it again), writing nothing;
a plain Conflict would say the request clashes with what is stored, which it does not."""

from typing import Any

import pytest

from adapters.mongodb import sessions
from adapters.mongodb.storage import MongoStorage
from domain.errors import Contended
from domain.session import Exit
from tests.contract.builders import NOW, SHUT, add_tenant, at, stored_session

pytestmark = pytest.mark.anyio
on_mongodb = pytest.mark.parametrize("storage_url", ["mongodb"], indirect=True)


@pytest.fixture
def always_changed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Another writer changes every session between each read and each write of it: every
    guarded save finds it changed. The list holds a line per save tried."""
    tried: list[str] = []

    async def changed_meanwhile(self: Any, read: Any, *_: Any) -> None:
        tried.append(read["id"])

    monkeypatch.setattr(sessions.MongoSessionRepository, "_save", changed_meanwhile)
    return tried


@on_mongodb
async def test_a_heartbeat_and_an_exit_that_always_lose_give_up_contended(
    mongodb: MongoStorage, always_changed: list[str]
) -> None:
    tenant = await add_tenant(mongodb)
    session = await stored_session(mongodb, tenant)

    with pytest.raises(Contended, match="changed too often"):
        await mongodb.sessions.heartbeat(tenant.id, session.id, at(1))
    with pytest.raises(Contended, match="retry the exit"):
        await mongodb.sessions.close(tenant.id, session.id, Exit(at(2)), frozenset(), NOW, SHUT)

    assert always_changed == [session.id] * (2 * sessions.ATTEMPTS)
    stored = await mongodb.sessions.get(tenant.id, session.id)
    assert stored is not None and stored.ended_at is None
