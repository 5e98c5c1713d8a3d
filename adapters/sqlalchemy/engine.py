"""Engines for the two SQL families, and the dialect-specific INSERT they need."""

from typing import Any

from sqlalchemy import Table, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
}


def async_url(url: str) -> str:
    """`sqlite:///x.db` / `postgresql://…` as users write them, with the async driver named."""
    scheme, rest = url.split(":", 1)
    return DRIVERS.get(scheme.lower(), scheme) + ":" + rest


def create_engine(url: str) -> AsyncEngine:
    full = make_url(async_url(url))
    if full.get_backend_name() == "sqlite":
        engine = create_async_engine(full)
        _serialise_sqlite_writers(engine)
        return engine
    return create_async_engine(full, pool_size=10, max_overflow=10, pool_pre_ping=True)


def _serialise_sqlite_writers(engine: AsyncEngine) -> None:
    """SQLite allows one writer. Every transaction takes the write lock when it begins
    (BEGIN IMMEDIATE), so concurrent writers queue for up to busy_timeout instead of failing
    with "database is locked" halfway through; WAL lets readers of other processes carry on."""

    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection: Any, _: Any) -> None:
        dbapi_connection.isolation_level = None  # the driver must not BEGIN on its own
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def insert(engine: AsyncEngine, table: Table) -> Any:
    """An INSERT that knows ON CONFLICT: both dialects have it, under their own class."""
    if engine.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)
