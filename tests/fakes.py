"""Fakes of the outside world for tests; storage is never faked (the in-memory adapter is real)."""

import threading
from datetime import UTC, datetime, timedelta

from domain.livekit import LiveKitAccount


class FakeClock:
    """A clock that moves only when a test says so."""

    def __init__(self, now: datetime = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)


class FakeTally:
    """The metrics' tally of credits charged: what settlements told it, from any thread (the
    racers of a contract test each run in one)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.told: list[int] = []

    def credits_charged(self, credits: int) -> None:
        with self._lock:
            self.told.append(credits)

    @property
    def total(self) -> int:
        return sum(self.told)


class UnreachableStorage:
    """A storage health probe whose database does not answer."""

    async def ping(self) -> None:
        raise ConnectionRefusedError("the database does not answer")


class FakeRoomService:
    """LiveKit servers as reconciliation asks them: who is in which room, by server URL. A
    server whose URL is in `down` raises what it maps to."""

    def __init__(self) -> None:
        self.rooms: dict[str, dict[str, set[str]]] = {}  # url -> room -> participant sids
        self.down: dict[str, Exception] = {}
        self.asked: list[tuple[str | None, str]] = []  # (url, room), in order

    async def participants(self, account: LiveKitAccount, room: str) -> set[str] | None:
        self.asked.append((account.url, room))
        if account.url in self.down:
            raise self.down[account.url]
        found = self.rooms.get(account.url or "", {}).get(room)
        return None if found is None else set(found)
