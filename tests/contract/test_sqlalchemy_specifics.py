"""What only the SQL family has to prove: its migrations, URLs and the SQLite default."""

from decimal import Decimal
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from adapters.sqlalchemy.engine import async_url
from adapters.sqlalchemy.quantities import from_nanos, to_nanos
from adapters.sqlalchemy.storage import SqlAlchemyStorage
from adapters.sqlalchemy.tables import metadata

pytestmark = pytest.mark.anyio


async def test_migrating_an_empty_sqlite_file_creates_the_schema_and_is_repeatable(
    tmp_path: Path,
) -> None:
    storage = SqlAlchemyStorage(f"sqlite:///{tmp_path}/fresh.db")
    try:
        await storage.migrate()
        await storage.migrate()
        async with storage.engine.connect() as conn:
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    finally:
        await storage.close()

    assert {"tenants", "api_keys", "sessions", "session_meters", "events"} <= tables
    assert (tmp_path / "fresh.db").exists()


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite:///./sessionmeter.db", "sqlite+aiosqlite:///./sessionmeter.db"),
        ("postgresql://u@h:5432/db", "postgresql+asyncpg://u@h:5432/db"),
        ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
    ],
)
def test_urls_as_users_write_them_get_the_async_driver(given: str, expected: str) -> None:
    assert async_url(given) == expected


@pytest.mark.parametrize(
    "quantity", [0, 7, 999_999_999, Decimal("0.000000001"), Decimal("123456.789"), Decimal("1")]
)
def test_quantities_survive_nano_units_exactly(quantity: int | Decimal) -> None:
    assert from_nanos(to_nanos(quantity), isinstance(quantity, Decimal)) == quantity


async def test_the_migrations_build_the_tables_the_code_declares(tmp_path: Path) -> None:
    storage = SqlAlchemyStorage(f"sqlite:///{tmp_path}/m.db")
    try:
        await storage.migrate()
        async with storage.engine.connect() as conn:
            diff = await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c), metadata)
            )
    finally:
        await storage.close()
    assert diff == []
