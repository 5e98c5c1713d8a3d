"""A tenant's open LiveKit stays, page by page, for the jobs that look at each of them
(reconciliation, the reaper's sweep of finished rooms)."""

from collections.abc import AsyncIterator

from application.sessions.ports import SessionFilter, SessionPosition, SessionRepository
from application.tenants.tenant_jobs import TenantFailure
from domain.errors import DomainError
from domain.livekit import KIND
from domain.session import Session, SessionStatus
from domain.tenants import Tenant

OPEN_STAYS = SessionFilter(kind=KIND, status=SessionStatus.ACTIVE)
PAGE = 500


async def open_stays(sessions: SessionRepository, tenant_id: str) -> AsyncIterator[list[Session]]:
    """Pages of the tenant's open stays, by start; a stay ended meanwhile moves no other out of
    a page (pages follow the position of the last stay read, not an offset)."""
    after = None
    while True:
        page = await sessions.find(tenant_id, OPEN_STAYS, PAGE, after)
        yield page
        if len(page) < PAGE:
            return
        after = SessionPosition(page[-1].started_at, page[-1].id)


def refused(tenant: Tenant, stay: Session, error: DomainError) -> TenantFailure:
    """A rule refused this stay's end: said, and the tenant's other stays are still looked at."""
    return TenantFailure(tenant.name, f"stay {stay.id}: {error.detail}")
