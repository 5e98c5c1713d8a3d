"""The SQL family's driver errors, raised to the application as StorageError.

Every SQLAlchemy error that escapes an adapter method: the methods catch those that carry a
meaning themselves (an IntegrityError is a key already taken), so what is left is the store
failing (unreachable, not migrated, locked past busy_timeout, no pooled connection in time).
asyncpg raises OSError itself when it cannot reach the server (refused, timed out). The hot
paths that use the drivers directly (asyncpg_statements, sqlite_statements) meet the drivers'
own errors: among them InternalClientError, which asyncpg raises on a connection the server
dropped while it sat in the pool (the next query finds the server's goodbye where a reply
should be).
"""

import sqlite3

from sqlalchemy.exc import SQLAlchemyError

from adapters.driver_errors import first_line, translating

try:
    from asyncpg import InterfaceError, InternalClientError, PostgresError

    ASYNCPG_ERRORS: tuple[type[Exception], ...] = (
        PostgresError,
        InterfaceError,
        InternalClientError,
    )
except ImportError:  # asyncpg is the `postgres` extra
    ASYNCPG_ERRORS = ()


def described(error: Exception) -> str:
    # asyncpg's connect gives up with a TimeoutError that says nothing.
    if isinstance(error, TimeoutError) and not str(error).strip():
        return "the database did not answer in time (TimeoutError)"
    return first_line(error)


raises_storage_errors = translating(
    SQLAlchemyError, OSError, sqlite3.Error, *ASYNCPG_ERRORS, describe=described
)


def lock_timed_out(error: Exception) -> bool:
    """Whether PostgreSQL gave up waiting for a lock (its lock_timeout ran out): asyncpg's
    error, or SQLAlchemy's around it."""
    driver_error = getattr(error, "orig", error)
    return getattr(driver_error, "sqlstate", None) == "55P03"
