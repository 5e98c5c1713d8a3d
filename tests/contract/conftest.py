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

import adapters.ledger_holds
import adapters.memory.credits
import adapters.mongodb.credits
import adapters.mongodb.erasure
import adapters.sqlalchemy.erasure
from adapters.mongodb import event_counting
from adapters.mongodb.storage import MongoStorage
from domain.tenants import Tenant
from entrypoints.container.outside import Untallied
from tests.conftest import open_storage
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
async def other_process(storage_url: str) -> AsyncIterator[Any]:
    """The same database as another server process sees it: a storage of its own."""
    opened = open_storage(storage_url)
    yield opened
    await opened.close()


@pytest.fixture
async def mongodb(storage_url: str) -> AsyncIterator[MongoStorage]:
    """The test's MongoDB storage as itself (for the tests of what only MongoDB has to prove)."""
    storage = MongoStorage(storage_url)
    yield storage
    await storage.close()


@pytest.fixture
def memory() -> Any:
    """A second, empty store: the other end of a tenant's move."""
    return open_storage("memory://")


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


# A settlement's wait for a held ledger, with `short_waits`: ATTEMPTS of it stay quick.
WAIT = 0.5


@pytest.fixture
def short_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    """A settlement waits WAIT for a held ledger (not 5 s), an erasure 0.5 s (not 40 s).
    PostgreSQL's settlement wait is migration 0027's lock_timeout, which stays 5 s; SQLite's
    settlements do not wait at all."""
    for module in (adapters.memory.credits, adapters.mongodb.credits):
        monkeypatch.setattr(module, "SETTLEMENT_WAIT_SECONDS", WAIT)
    erasures_wait(monkeypatch, 0.5)


def erasures_wait(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """An erasure waits `seconds` for the ledgers it holds, then is refused (not 40 s)."""
    for module in (adapters.ledger_holds, adapters.sqlalchemy.erasure, adapters.mongodb.erasure):
        monkeypatch.setattr(module, "ERASURE_WAIT_SECONDS", seconds)


@pytest.fixture
def stale_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """MongoDB: marks are stale at once, so every append that died is a batch any finisher may
    finish (event_counting.STALE_AFTER)."""
    monkeypatch.setattr(event_counting, "STALE_AFTER", timedelta(seconds=-1))
