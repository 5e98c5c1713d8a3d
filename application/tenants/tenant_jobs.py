"""Background jobs (reaper, rollups, retention, reconciliation) go tenant by tenant, and one
tenant's failure must not stall the others: it is caught, said in the run's result (the entry
points log and count it), and the run goes on with the next tenant."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from application.tenants.as_stored import as_stored
from application.tenants.ports import TenantRepository
from domain.errors import DomainError, NotFound
from domain.tenants import Tenant


@dataclass(frozen=True)
class TenantFailure:
    tenant_name: str
    error: str  # one line for an operator


async def chosen_tenants(tenants: TenantRepository, tenant_name: str | None) -> list[Tenant]:
    """Every tenant, or the one named (NotFound if there is none)."""
    if tenant_name is None:
        return await tenants.all()
    tenant = await tenants.get_by_name(tenant_name)
    if tenant is None:
        raise NotFound(f"no tenant named {tenant_name}")
    return [tenant]


async def each_tenant(
    tenants: TenantRepository, chosen: list[Tenant], work: Callable[[Tenant], Awaitable[None]]
) -> list[TenantFailure]:
    """Run `work` for every chosen tenant in turn, each as stored when its turn comes (a run
    over many tenants takes a while: a window shortened or lengthened meanwhile applies); the
    failures, one per tenant that failed."""
    failures = []
    for listed in chosen:
        try:
            await work(await as_stored(tenants, listed))
        except Exception as error:  # isolation is the point: whatever broke, go on
            failures.append(TenantFailure(listed.name, describe(error)))
    return failures


def describe(error: Exception) -> str:
    if isinstance(error, DomainError):
        return error.detail
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
