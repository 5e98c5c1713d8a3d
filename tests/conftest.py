"""Backends every storage-facing test runs against: memory, SQLite and a real PostgreSQL server.

`storage_url` gives each test a clean, migrated database of one family; `storage` is the storage
object on it. PostgreSQL runs once per test run (tests/servers.py); each test gets its own database
cloned from a migrated template, which is faster than migrating and isolates concurrent writers.
"""

import asyncio
import itertools
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest

from adapters.memory.storage import MemoryStorage
from adapters.sqlalchemy.storage import SqlAlchemyStorage
from tests.app_client import Api, serve_app
from tests.servers import PostgresServer

BACKENDS = ["memory", "sqlite", "postgresql"]
TEMPLATE = "sessionmeter_template"
T = TypeVar("T")
_databases = itertools.count()


def run_async(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from synchronous code, whatever loop the caller is in."""

    async def main() -> T:
        return await make()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, main()).result()


def _psql(url: str, sql: str) -> None:
    subprocess.run(
        ["psql", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql], check=True, capture_output=True
    )


def _database_url(server_url: str, name: str) -> str:
    return server_url.rsplit("/", 1)[0] + "/" + name


async def _migrate(url: str) -> None:
    storage = SqlAlchemyStorage(url)
    try:
        await storage.migrate()
    finally:
        await storage.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The server's maintenance database; a migrated template database sits beside it."""
    with PostgresServer() as server:
        _psql(server.url, f"DROP DATABASE IF EXISTS {TEMPLATE}")
        _psql(server.url, f"CREATE DATABASE {TEMPLATE}")
        run_async(lambda: _migrate(_database_url(server.url, TEMPLATE)))
        yield server.url


@pytest.fixture(params=BACKENDS)
def storage_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    if request.param == "memory":
        yield "memory://"
    elif request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/sessionmeter.db"
        run_async(lambda: _migrate(url))
        yield url
    else:
        server = request.getfixturevalue("postgres_url")
        name = f"test_{next(_databases)}"
        _psql(server, f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        yield _database_url(server, name)
        _psql(server, f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture
async def storage(storage_url: str) -> AsyncIterator[Any]:
    if storage_url == "memory://":
        yield MemoryStorage()
        return
    sql = SqlAlchemyStorage(storage_url)
    yield sql
    await sql.close()


@pytest.fixture
def api(storage_url: str) -> Iterator[Api]:
    """The real app on a clean database of each backend."""
    yield from serve_app(storage_url)
