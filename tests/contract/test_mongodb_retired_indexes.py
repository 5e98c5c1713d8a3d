"""MongoDB: `db upgrade` drops the indexes a later one replaced, where an older version made
them, and makes their replacements; run again, it changes nothing."""

import pytest
from pymongo import ASCENDING

from adapters.mongodb.indexes import INDEXES, RETIRED
from adapters.mongodb.storage import MongoStorage

pytestmark = pytest.mark.anyio
on_mongodb = pytest.mark.parametrize("storage_url", ["mongodb"], indirect=True)


@on_mongodb
async def test_an_upgrade_replaces_the_retired_session_end_index(mongodb: MongoStorage) -> None:
    sessions = mongodb.db["sessions"]
    await sessions.drop_index("ix_sessions_ended_id")
    # As an older version made it.
    await sessions.create_index(
        [("tenant_id", ASCENDING), ("ended_at", ASCENDING)], name="ix_sessions_ended"
    )

    for _ in range(2):
        await mongodb.migrate()
        names = set(await sessions.index_information())
        assert "ix_sessions_ended" in RETIRED["sessions"]
        assert not names & set(RETIRED["sessions"])
        assert {index.document["name"] for index in INDEXES["sessions"]} <= names
