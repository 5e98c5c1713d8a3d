"""Fakes of the outside world for tests; storage is never faked (the in-memory adapter is real)."""

from datetime import UTC, datetime, timedelta


class FakeClock:
    """A clock that moves only when a test says so."""

    def __init__(self, now: datetime = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)


class UnreachableStorage:
    """A storage health probe whose database does not answer."""

    async def ping(self) -> None:
        raise ConnectionRefusedError("the database does not answer")
