"""Storage failing the way operators make it fail (a server that is down, a file that cannot be
opened, a schema not migrated) reaches the caller of a port as the application's StorageError,
never as its driver's error. Memory never fails that way."""

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import text

from adapters.mongodb.storage import MongoStorage
from adapters.sqlalchemy.engine import create_engine
from adapters.sqlalchemy.storage import SqlAlchemyStorage
from application.storage import Storage, StorageError
from tests.contract.telemetry_builders import a_metric, a_sale, an_error
from tests.servers import free_port

pytestmark = pytest.mark.anyio

PortCall = Callable[[Storage], Awaitable[object]]


async def _exported(storage: Storage) -> list[object]:
    return [record async for record in storage.archive.export("a-tenant")]


async def _all_tenants(storage: Storage) -> object:
    return await storage.tenants.all()


async def _ping(storage: Storage) -> None:
    await storage.health.ping()


async def _migrate(storage: Storage) -> None:
    await storage.migrate()


def _added(log: str, record: object) -> PortCall:
    """Adding to one of the telemetry logs (SQL's three inherit `add` from a shared base)."""

    async def add(storage: Storage) -> object:
        return await getattr(storage, log).add("a-tenant", [record])

    return add


TELEMETRY_ADDS = [
    _added("errors", an_error("e")),
    _added("metrics", a_metric("m", 1.0)),
    _added("sales", a_sale("s", "a-session")),
]


def _family(storage_url: str) -> str:
    if storage_url == "memory://":
        pytest.skip("memory has no server to lose and no schema to migrate")
    return storage_url.split(":", 1)[0]


# How long a server that does not answer is waited for (an operator's command waits 5 s).
WAIT_SECONDS = 0.2


def _open(url: str, wait_seconds: float = WAIT_SECONDS) -> Storage:
    if url.startswith("mongodb"):
        return MongoStorage(url, wait_seconds=wait_seconds)
    return SqlAlchemyStorage(url, wait_seconds=wait_seconds)


def _unusable(storage_url: str, tmp_path: Path) -> str:
    """A storage of the same family that cannot be used at all: a server port nobody listens
    on; for SQLite a file that is not a database (a path that cannot be opened fails the same
    way, but aiosqlite then stops its thread too late for the test's event loop)."""
    family = _family(storage_url)
    if family == "sqlite":
        not_a_database = tmp_path / "not-a-database.db"
        not_a_database.write_text("these are not the pages of a database\n" * 200)
        return f"sqlite:///{not_a_database}"
    if family == "mongodb":
        return f"mongodb://127.0.0.1:{free_port()}/unreachable"
    return f"postgresql://postgres@127.0.0.1:{free_port()}/unreachable"


@asynccontextmanager
async def _unmigrated(storage_url: str, tmp_path: Path) -> AsyncIterator[str]:
    """A database of the same family that nobody has migrated."""
    family = _family(storage_url)
    if family == "mongodb":
        pytest.skip("MongoDB creates collections as they are written: nothing to migrate first")
    if family == "sqlite":
        yield f"sqlite:///{tmp_path}/unmigrated.db"
        return
    name = f"{storage_url.rsplit('/', 1)[1]}_unmigrated"
    engine = create_engine(storage_url, pool_size=1)
    server = engine.execution_options(isolation_level="AUTOCOMMIT")
    try:
        async with server.connect() as conn:
            await conn.execute(text(f"CREATE DATABASE {name}"))
        try:
            yield f"{storage_url.rsplit('/', 1)[0]}/{name}"
        finally:
            async with server.connect() as conn:
                await conn.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
    finally:
        await engine.dispose()


async def _assert_each_raises_storage_error(url: str, calls: list[PortCall]) -> None:
    storage = _open(url)
    try:
        for call in calls:
            with pytest.raises(StorageError) as raised:
                await call(storage)
            message = str(raised.value)
            assert message and "\n" not in message and "[SQL" not in message, message
            assert raised.value.__cause__ is not None, "chained from the driver's error"
    finally:
        await storage.close()


async def test_a_storage_that_cannot_be_reached_or_opened_raises_storage_error(
    storage_url: str, tmp_path: Path
) -> None:
    await _assert_each_raises_storage_error(
        _unusable(storage_url, tmp_path),
        [_all_tenants, _ping, _exported, _migrate, *TELEMETRY_ADDS],
    )


async def test_a_storage_whose_schema_is_not_migrated_raises_storage_error(
    storage_url: str, tmp_path: Path
) -> None:
    async with _unmigrated(storage_url, tmp_path) as url:
        await _assert_each_raises_storage_error(url, [_all_tenants, _exported, *TELEMETRY_ADDS])


async def test_a_mongodb_url_that_sets_its_own_wait_keeps_it() -> None:
    """An operator's serverSelectionTimeoutMS in the URL wins over the wait the storage is
    given (a server's default, a command's 5 s); the error names the wait and the server, not
    pymongo's description of the whole topology."""
    url = f"mongodb://127.0.0.1:{free_port()}/unreachable?serverSelectionTimeoutMS=300"
    storage = _open(url, wait_seconds=30)
    began = time.monotonic()
    try:
        with pytest.raises(StorageError) as raised:
            await storage.tenants.all()
    finally:
        await storage.close()
    assert time.monotonic() - began < 10
    message = str(raised.value)
    assert message.startswith("no MongoDB server to use within 0.3s: 127.0.0.1:"), message
    assert "Topology" not in message and "configured timeouts" not in message, message
