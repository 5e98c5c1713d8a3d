from datetime import UTC, datetime

from domain.clock import to_the_millisecond


class SystemClock:
    def now(self) -> datetime:
        return to_the_millisecond(datetime.now(UTC))
