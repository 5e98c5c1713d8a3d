from pymongo.asynchronous.database import AsyncDatabase

from adapters.mongodb.documents import Document
from adapters.mongodb.errors import raises_storage_errors
from application.health.ports import StorageHealth


@raises_storage_errors
class MongoHealth(StorageHealth):
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._db = db

    async def ping(self) -> None:
        await self._db.command("ping")
