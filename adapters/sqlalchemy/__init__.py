"""SQL storage with SQLAlchemy 2 async: SQLite (embedded default, aiosqlite) and PostgreSQL (asyncpg)."""
