from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sqlalchemy.errors import raises_storage_errors
from application.health.ports import StorageHealth


@raises_storage_errors
class SqlHealth(StorageHealth):
    def __init__(self, engine: AsyncEngine, database_file: Path | None = None) -> None:
        """`database_file`: a SQLite database's file, which must be at its path too: connections
        opened before it was moved away still answer (from the file where it went), but what
        they write is refused (SQLite's "database file has been moved")."""
        self._engine = engine
        self._file = database_file

    async def ping(self) -> None:
        async with self._engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        if self._file is not None:
            self._file.stat()  # FileNotFoundError, an OSError: a StorageError
