"""Fixtures of the storage contract suite: one suite, run against every storage family.

`storage` (tests/conftest.py) is parametrised over memory, SQLite, a real PostgreSQL server and a
MongoDB server; the tests here speak only to the ports, so what passes here behaves the same on every
backend. Concurrent callers go through `race` (races.py): each has a storage object of its own and
they all start at once.
"""

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from adapters.mongodb import event_counting
from adapters.mongodb.storage import MongoStorage
from domain.tenants import Tenant
from entrypoints.container.outside import Untallied
from tests.contract.builders import add_tenant
from tests.contract.races import Race
from tests.fakes import FakeTally


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def tenant(storage: Any) -> Tenant:
    return await add_tenant(storage)


@pytest.fixture
async def mongodb(storage_url: str) -> AsyncIterator[MongoStorage]:
    """The test's MongoDB storage as itself (for the tests of what only MongoDB has to prove)."""
    storage = MongoStorage(storage_url)
    yield storage
    await storage.close()


@pytest.fixture
def race(storage_url: str, storage: Any) -> Race:
    """Run callers concurrently, each on its own storage object of the test's database."""
    return Race(storage_url, storage)


@pytest.fixture
def tally(monkeypatch: pytest.MonkeyPatch) -> FakeTally:
    """What every container of the test (each racer's, each helper's) tells the metrics."""
    heard = FakeTally()
    monkeypatch.setattr(
        Untallied, "credits_charged", lambda _, credits: heard.credits_charged(credits)
    )
    return heard


@pytest.fixture
def stale_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """MongoDB: marks are stale at once, so every append that died is a batch any finisher may
    finish (event_counting.STALE_AFTER)."""
    monkeypatch.setattr(event_counting, "STALE_AFTER", timedelta(seconds=-1))
