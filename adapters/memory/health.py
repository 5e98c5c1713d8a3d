from application.health.ports import StorageHealth


class MemoryHealth(StorageHealth):
    async def ping(self) -> None:
        """Memory always answers."""
