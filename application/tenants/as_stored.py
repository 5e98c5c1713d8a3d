"""A tenant as stored now. What a request's key resolved (remembered for a few seconds per
process) and the list a job read when its run began may predate a settings change that must
apply: an erasure's personal attributes, retention's windows, a rollup's time zone."""

from application.tenants.ports import TenantRepository
from domain.tenants import Tenant


async def as_stored(tenants: TenantRepository, tenant: Tenant) -> Tenant:
    """`tenant` as `tenants` (not a remembering one) stores it now; `tenant` itself if it is
    not stored (tenants are never deleted)."""
    return await tenants.get(tenant.id) or tenant
