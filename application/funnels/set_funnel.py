"""Define a funnel."""

from dataclasses import dataclass

from application.funnels.ports import FunnelRepository
from domain.funnels import Funnel


@dataclass(frozen=True)
class SetFunnelCommand:
    tenant_id: str
    funnel: Funnel


class SetFunnel:
    """Define a funnel: the stages, in order, that a session of one kind goes through (2-20 of
    unique names). A stage is reached by an event of its `match.type`, and of its
    `match.label` and `match.category` when they are given. The funnel replaces any funnel of
    the same name; a funnel's name, like a session kind, is 1-64 characters of a-z 0-9 _ . -."""

    def __init__(self, funnels: FunnelRepository) -> None:
        self._funnels = funnels

    async def __call__(self, command: SetFunnelCommand) -> Funnel:
        await self._funnels.put(command.tenant_id, command.funnel)
        return command.funnel
