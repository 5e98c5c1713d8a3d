"""Builders of tenants and sessions for the contract suite, at fixed instants around T0."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from domain.session import Session, SessionRequest
from domain.tenants import Tenant, TenantSettings

T0 = datetime(2026, 11, 24, 12, 0, 0, 123000, tzinfo=UTC)  # instants are kept to the ms


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


async def add_tenant(storage: Any, name: str = "acme", **settings: int) -> Tenant:
    tenant = Tenant(str(uuid.uuid4()), name, T0, TenantSettings(**settings))
    await storage.tenants.add(tenant)
    return tenant


def a_session(tenant: Tenant, minutes: float = 0, **fields: Any) -> Session:
    """A new session of `tenant`, started `minutes` after T0."""
    request = SessionRequest(
        kind=fields.pop("kind", "webinar"),
        resource_id=fields.pop("resource_id", "webinar-1"),
        subject_id=fields.pop("subject_id", "user-1"),
        client_key=fields.pop("client_key", None),
        started_at=at(minutes),
        attributes=fields.pop("attributes", {}),
    )
    assert not fields, f"unknown fields {fields}"
    return Session.start(tenant.id, str(uuid.uuid4()), request, now=at(24 * 60))


async def stored_session(
    storage: Any, tenant: Tenant, minutes: float = 0, **fields: Any
) -> Session:
    session = a_session(tenant, minutes, **fields)
    assert await storage.sessions.add(session)
    return session
