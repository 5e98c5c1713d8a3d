"""What a public-grade key may not write: sessions of kinds that move money or limits, and
sessions of resources outside its scope."""

from typing import Protocol

from application.credits.rate_book import RateBook
from application.sessions.ports import SessionRepository
from application.trials.ports import PlanRepository
from domain.errors import NotFound
from domain.plans import named_kinds
from domain.session import Session, WriteCheck
from domain.tenants import Access, Role


class BilledKinds:
    """Kinds with a rate and kinds a plan's limits name: their starts, heartbeats, exits and meters
    change what someone is charged or may still do, so they come from an `app` or `admin` key
    (domain.tenants.Access.check_writes). Read only when the caller holds an ingest key."""

    def __init__(self, rate_book: RateBook, plans: PlanRepository) -> None:
        self._rate_book = rate_book
        self._plans = plans

    async def check(self, tenant_id: str, access: Access, kind: str) -> None:
        if access.role is Role.INGEST:
            access.check_writes(kind, await self.of(tenant_id))

    async def write_check(self, tenant_id: str, access: Access) -> WriteCheck | None:
        """How to judge the key's write into an existing session (by the session's resource and
        kind, as stored); None for a key that may write into any."""
        if access.role is not Role.INGEST:
            return None
        billed = await self.of(tenant_id)

        def check(session: Session) -> None:
            access.check_scope(session.resource_id)
            access.check_writes(session.kind, billed)

        return check

    async def of(self, tenant_id: str) -> frozenset[str]:
        rated = frozenset(await self._rate_book.rates(tenant_id))
        return rated | named_kinds(await self._plans.all(tenant_id))


class WriteCommand(Protocol):
    @property
    def tenant_id(self) -> str: ...

    @property
    def access(self) -> Access: ...


async def check_writes(
    sessions: SessionRepository, billed_kinds: BilledKinds, command: WriteCommand, session_id: str
) -> None:
    """An ingest key's write to an existing session: judged by the session's resource and kind."""
    check = await billed_kinds.write_check(command.tenant_id, command.access)
    if check is None:
        return
    session = await sessions.get(command.tenant_id, session_id)
    if session is None:
        raise NotFound(f"no session {session_id}")
    check(session)
