"""Backends every storage-facing test runs against: memory, SQLite, a real PostgreSQL server and a
MongoDB wire-protocol server.

`storage_url` gives each test a clean, migrated database of one family; `storage` is the storage
object on it. The servers run once per test run (tests/servers.py). Every test gets a database of
its own, which isolates concurrent writers, made the cheapest way each store allows: SQLite copies
a file migrated once; PostgreSQL clones a migrated template database, the next test's while this
one runs; MongoDB creates the indexes and drops the database after the test, in the background.
"""

import asyncio
import itertools
import os
import queue
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest

from adapters.mongodb.storage import connect
from entrypoints.container import storage_config
from entrypoints.container.storage import StorageContainer
from entrypoints.settings import Settings
from tests.app_client import Api, serve_app
from tests.servers import MongoServer, PostgresServer

BACKENDS = ["memory", "sqlite", "postgresql", "mongodb"]
# The HTTP and BDD suites prove the API, the contract suite every store (and the live servers run
# on each): the API suites leave out the MongoDB test server, by far the slowest, unless
# SESSIONMETER_TEST_EVERY_STORE is set (as the full-coverage run `make test-every-store` does).
API_BACKENDS = BACKENDS if os.environ.get("SESSIONMETER_TEST_EVERY_STORE") else BACKENDS[:3]
TEMPLATE = "sessionmeter_template"
T = TypeVar("T")
_databases = itertools.count()


# tests/live runs first: it is the longest file (its scenarios play out in real time, about two
# minutes), and xdist hands out whole files in the order collected, so collected where it falls
# it was left running alone at the end while the other workers had finished.
RUNS_FIRST = "tests/live/"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: not item.nodeid.startswith(RUNS_FIRST))


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


def psql(url: str, sql: str) -> str:
    """What the statement printed, unaligned and without headers."""
    done = subprocess.run(
        ["psql", "-qAt", "-v", "ON_ERROR_STOP=1", url, "-c", sql],
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


def _database_url(server_url: str, name: str) -> str:
    return server_url.rsplit("/", 1)[0] + "/" + name


def open_storage(url: str) -> Any:
    """A new storage object of the family that serves `url`, chosen and built by the storage
    container as the service does (a container of its own, so each call opens its own engine or
    client). The storage container alone: the whole one costs ten times the CPU to build (5 ms,
    dependency-injector copying every provider), and tests open thousands, one a racer."""
    container = StorageContainer()
    container.config.from_dict(storage_config(Settings(storage_url=url)))
    return container.backend()


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
        psql(server.url, f"DROP DATABASE IF EXISTS {TEMPLATE}")
        psql(server.url, f"CREATE DATABASE {TEMPLATE}")
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


class PostgresDatabases:
    """Databases cloned from the template and, after a test, emptied for the next one: deleting
    the few rows a test leaves takes the server a tenth of the time of a clone (TRUNCATE a
    third: it makes new files), and is done on a thread of its own while the next test sets up.
    No table has a foreign key or a sequence, so the order of the deletes does not matter."""

    def __init__(self, server: str) -> None:
        self._server = server
        self._background = ThreadPoolExecutor(1, thread_name_prefix="postgresql-databases")
        self._emptied: queue.SimpleQueue[Future[str]] = queue.SimpleQueue()
        self._made: list[str] = []
        self._empty_all = psql(
            _database_url(server, TEMPLATE),
            "SELECT string_agg('DELETE FROM ' || quote_ident(tablename), '; ') FROM pg_tables"
            " WHERE schemaname = 'public' AND tablename <> 'alembic_version'",
        )

    @contextmanager
    def fresh(self) -> Iterator[str]:
        try:
            name = self._emptied.get_nowait().result()
        except queue.Empty:
            name = self._clone()
        yield _database_url(self._server, name)
        self._emptied.put(self._background.submit(self._empty, name))

    def close(self) -> None:
        self._background.shutdown(wait=True)
        for name in self._made:
            psql(self._server, f"DROP DATABASE {name} WITH (FORCE)")

    def _clone(self) -> str:
        name = _database_name()
        psql(self._server, f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        self._made.append(name)
        return name

    def _empty(self, name: str) -> str:
        psql(_database_url(self._server, name), self._empty_all)
        return name


@pytest.fixture(scope="session")
def postgresql_databases(postgres_url: str) -> Iterator[PostgresDatabases]:
    made = PostgresDatabases(postgres_url)
    yield made
    made.close()  # before the server stops


class MongoDatabases:
    """Databases with their indexes created; each is dropped on a thread of its own."""

    def __init__(self, server: MongoServer) -> None:
        self._server = server
        self._background = ThreadPoolExecutor(1, thread_name_prefix="mongodb-databases")

    @contextmanager
    def fresh(self) -> Iterator[str]:
        url = self._server.database_url(_database_name())
        run_async(lambda: _migrate(url))
        yield url
        self._background.submit(run_async, lambda: _drop_database(url))

    def close(self) -> None:
        self._background.shutdown(wait=True)


@pytest.fixture(scope="session")
def mongodb_databases(mongodb_server: MongoServer) -> Iterator[MongoDatabases]:
    made = MongoDatabases(mongodb_server)
    yield made
    made.close()  # before the server stops


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database migrated once; each test gets a copy of the file."""
    template = tmp_path_factory.mktemp("sqlite") / "template.db"
    run_async(lambda: _migrate(f"sqlite:///{template}"))
    return template


class Databases:
    """A fresh, migrated database of any store, made the cheapest way that store allows."""

    def __init__(self, request: pytest.FixtureRequest, directory: Path) -> None:
        self._request = request
        self._directory = directory

    @contextmanager
    def fresh(self, store: str) -> Iterator[str]:
        if store == "memory":
            yield "memory://"
        elif store == "sqlite":
            file = self._directory / f"{_database_name()}.db"
            shutil.copyfile(self._request.getfixturevalue("sqlite_template"), file)
            yield f"sqlite:///{file}"
        else:
            server: PostgresDatabases | MongoDatabases = self._request.getfixturevalue(
                f"{store}_databases"
            )
            with server.fresh() as url:
                yield url


@pytest.fixture(scope="session")
def databases(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Databases:
    return Databases(request, tmp_path_factory.mktemp("databases"))


def _fresh_storage_url(request: pytest.FixtureRequest, databases: Databases) -> Iterator[str]:
    with databases.fresh(request.param) as url:
        yield url


storage_url = pytest.fixture(params=BACKENDS, name="storage_url")(_fresh_storage_url)
# tests/http and tests/bdd take this one instead (their conftest imports it).
api_storage_url = pytest.fixture(params=API_BACKENDS, name="storage_url")(_fresh_storage_url)


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


@pytest.fixture(autouse=True)
def statements_built_in_each_test_under_mutmut() -> None:
    """Under mutmut (`make mutants`), each test starts with the adapters' cached statements
    built again: a mutant's process forks from one that ran the tests already, whose cached
    statements would hide the mutant; and in its stats phase only the first test to build a
    statement would be tied to its builder (tests/mutation_scope.py)."""
    if os.environ.get("MUTANT_UNDER_TEST"):
        for module in [m for name, m in sys.modules.items() if name.startswith("adapters.")]:
            for value in vars(module).values():
                if getattr(value, "__module__", None) == module.__name__:
                    getattr(value, "cache_clear", lambda: None)()
