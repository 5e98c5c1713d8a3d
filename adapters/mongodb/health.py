from pymongo.asynchronous.database import AsyncDatabase

from adapters.mongodb.documents import Document


class MongoHealth:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._db = db

    async def ping(self) -> None:
        await self._db.command("ping")
