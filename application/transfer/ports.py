"""The ports of the transfer area: what its use cases need from storage and the outside world.

Whatever must be race-free is one method here; its docstring is the contract that the storage
contract suite (tests/contract) proves on every adapter with concurrent callers.
"""

from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from domain.credits import Alert, LedgerEntry, Rate
from domain.error_reports import ErrorReport
from domain.events import Event
from domain.funnels import Funnel
from domain.livekit import LiveKitAccount
from domain.performance import Metric
from domain.plans import Plan, Registration, Subscription, SubscriptionSet
from domain.sales import Sale
from domain.session import Session
from domain.snapshots import Snapshot
from domain.tenants import ApiKey, Tenant

# Everything that makes up a tenant's state, as an export carries it.
Record = (
    Tenant
    | ApiKey
    | Rate
    | Plan
    | Subscription
    | SubscriptionSet
    | Registration
    | Funnel
    | Session
    | Event
    | LedgerEntry
    | Alert
    | LiveKitAccount
    | Snapshot
    | ErrorReport
    | Metric
    | Sale
)


class TenantArchive(Protocol):
    def export(self, tenant_id: str) -> AsyncIterator[Record]:
        """The tenant's whole state, streamed (never loaded whole), in an order an import can
        apply as it reads: the tenant, keys, rates, plans, subscriptions and their history,
        registrations, funnels, sessions, events, ledger entries, alerts, LiveKit keys, snapshots,
        errors, metrics, sales (with their settlement)."""
        ...

    async def restore(self, tenant_id: str, records: Sequence[Record]) -> int:
        """Store the records that are not there yet, by their natural keys, exactly as given:
        a session keeps its status, usage and charge; an event adds nothing to its session.
        Returns how many were new. A tenant whose name another tenant holds is a Conflict."""
        ...
