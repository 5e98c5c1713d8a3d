"""Backends every storage-facing test runs against: memory, SQLite, a real PostgreSQL server and a
MongoDB wire-protocol server.

`storage_url` gives each test a clean, migrated database of one family; `storage` is the storage
object on it. The servers run once per test run (tests/servers.py). Each PostgreSQL test gets its
own database cloned from a migrated template, which is faster than migrating and isolates
concurrent writers; each MongoDB test gets its own database with its indexes created.
"""

import asyncio
import itertools
import os
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest

from adapters.mongodb.storage import connect
from entrypoints.container import build_container
from entrypoints.settings import Settings
from tests.app_client import Api, serve_app
from tests.servers import MongoServer, PostgresServer

BACKENDS = ["memory", "sqlite", "postgresql", "mongodb"]
TEMPLATE = "sessionmeter_template"
T = TypeVar("T")
_databases = itertools.count()


def _database_name() -> str:
    """A database name no other test process uses on a shared server (`make mutants` forks one
    process per mutant from the same counter, and a killed one leaves its database behind)."""
    return f"test_{os.getpid()}_{next(_databases)}"


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


def open_storage(url: str) -> Any:
    """A new storage object of the family that serves `url`, chosen and built by the container
    as the service does (a container of its own, so each call opens its own engine or client)."""
    return build_container(Settings(storage_url=url)).storage.backend()


async def _migrate(url: str) -> None:
    storage = open_storage(url)
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


@pytest.fixture(scope="session")
def mongodb_server() -> Iterator[MongoServer]:
    with MongoServer() as server:
        yield server


async def _drop_database(url: str) -> None:
    client = connect(url)
    try:
        await client.drop_database(client.get_default_database())
    finally:
        await client.close()


@pytest.fixture(params=BACKENDS)
def storage_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    if request.param == "memory":
        yield "memory://"
    elif request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/sessionmeter.db"
        run_async(lambda: _migrate(url))
        yield url
    elif request.param == "mongodb":
        mongodb: MongoServer = request.getfixturevalue("mongodb_server")
        url = mongodb.database_url(_database_name())
        run_async(lambda: _migrate(url))
        yield url
        run_async(lambda: _drop_database(url))
    else:
        server = request.getfixturevalue("postgres_url")
        name = _database_name()
        _psql(server, f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        yield _database_url(server, name)
        _psql(server, f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture
async def storage(storage_url: str) -> AsyncIterator[Any]:
    opened = open_storage(storage_url)
    yield opened
    if storage_url != "memory://":
        await opened.close()


@pytest.fixture
def api(storage_url: str) -> Iterator[Api]:
    """The real app on a clean database of each backend."""
    yield from serve_app(storage_url)
