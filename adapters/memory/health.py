class MemoryHealth:
    async def ping(self) -> None:
        """Memory always answers."""
