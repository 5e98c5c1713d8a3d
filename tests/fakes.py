"""Fakes for unit tests: only the outside world is faked; storage is the real in-memory adapter."""

from datetime import UTC, datetime, timedelta


class FakeClock:
    def __init__(self, now: datetime = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)
