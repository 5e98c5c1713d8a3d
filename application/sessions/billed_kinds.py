"""The kinds of session that move money or limits, which public-grade keys may not write."""

from typing import Protocol

from application.credits.rate_book import RateBook
from application.sessions.ports import SessionRepository
from application.trials.ports import PlanRepository
from domain.errors import NotFound
from domain.tenants import Role


class BilledKinds:
    """Kinds with a rate and kinds a plan's limits name: their starts, heartbeats, exits and meters
    change what someone is charged or may still do, so they come from an `app` or `admin` key
    (domain.tenants.Role.check_writes). Read only when the caller holds an ingest key."""

    def __init__(self, rate_book: RateBook, plans: PlanRepository) -> None:
        self._rate_book = rate_book
        self._plans = plans

    async def check(self, tenant_id: str, role: Role, kinds: set[str]) -> None:
        if role is not Role.INGEST or not kinds:
            return
        billed = await self.of(tenant_id)
        for kind in sorted(kinds):
            role.check_writes(kind, billed)

    async def of(self, tenant_id: str) -> frozenset[str]:
        billed = set(await self._rate_book.rates(tenant_id))
        for plan in await self._plans.all(tenant_id):
            billed |= plan.limits.session_kinds
        return frozenset(billed)


class WriteCommand(Protocol):
    @property
    def tenant_id(self) -> str: ...

    @property
    def role(self) -> Role: ...


async def check_writes(
    sessions: SessionRepository, billed_kinds: BilledKinds, command: WriteCommand, session_id: str
) -> None:
    """An ingest key's write to an existing session: judged by the session's kind."""
    if command.role is not Role.INGEST:
        return
    session = await sessions.get(command.tenant_id, session_id)
    if session is None:
        raise NotFound(f"no session {session_id}")
    await billed_kinds.check(command.tenant_id, command.role, {session.kind})
