"""Late data changes hours that rollups may have covered already (late events, an end moved by
later evidence or by the client's own exit): the next rollup run is asked to go back to them, so
that reports read from rollups agree with the sessions they sum."""

from datetime import datetime

from application.ports import Clock
from application.rollups.ports import RollupLeases
from application.rollups.roll_up_usage import LATE_DATA
from domain.calendar import hour_of


class RollupRewinds:
    def __init__(self, leases: RollupLeases, clock: Clock) -> None:
        self._leases = leases
        self._clock = clock

    async def changed_since(self, tenant_id: str, since: datetime) -> None:
        """The tenant's data changed from `since` on. Within LATE_DATA of now every run
        recomputes anyway; older hours are rewound to."""
        if since < self._clock.now() - LATE_DATA:
            await self._leases.rewind(tenant_id, hour_of(since))
