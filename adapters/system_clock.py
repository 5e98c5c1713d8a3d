from datetime import UTC, datetime

from application.ports import Clock
from domain.clock import to_the_millisecond


class SystemClock(Clock):
    def now(self) -> datetime:
        return to_the_millisecond(datetime.now(UTC))
