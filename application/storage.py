"""What the use cases and entry points may know about storage: the ports one storage family
provides together, and how storage failing looks."""

from typing import Protocol

from application.credits.ports import CreditLedger, RateRepository
from application.data_rights.ports import Erasure
from application.events.ports import EventLog
from application.funnels.ports import FunnelDays, FunnelEvents, FunnelRepository
from application.health.ports import StorageHealth
from application.livekit.ports import FinishedRooms, LiveKitAccounts, TrackLog, WebhookLog
from application.reports.ports import Reports
from application.retention.ports import Retention
from application.rollups.ports import RollupLeases, RollupRepository, UsageSource
from application.sessions.ports import SessionRepository
from application.snapshots.ports import SnapshotLog
from application.telemetry.ports import ErrorLog, MetricLog, SaleBook
from application.tenants.ports import ApiKeyRepository, TenantRepository
from application.transfer.ports import TenantArchive
from application.trials.ports import (
    PlanRepository,
    RefusedStarts,
    ResourceRegistry,
    SubscriptionRepository,
    TrialSessions,
)
from domain.session import Charge


class StorageError(Exception):
    """The storage itself failed in a way an operator causes and fixes: a server that is down, a
    file that cannot be opened, a schema not migrated yet. Adapters raise it in place of their
    driver's errors; its message is the driver's first line, without SQL or parameters."""


class SettlementCutShort(StorageError):
    """The store failed after it claimed these sessions' settlements (`charges`, by session id)
    and before it had written all they owe the ledger. The claims stand: whoever settles one of
    them next (the client's retry, the reaper's pending_charges) writes what it owes, so its
    caller tells the first charges as if it had finished. (MongoDB's settlement is two writes;
    the SQL stores settle in one transaction and never raise it.)"""

    def __init__(self, message: str, charges: dict[str, Charge]) -> None:
        super().__init__(message)
        self.charges = charges


class Storage(Protocol):
    """One storage family (memory, SQL, MongoDB): every repository over one store, opened by
    constructing it and released by `close`."""

    sessions: SessionRepository
    events: EventLog
    tenants: TenantRepository
    api_keys: ApiKeyRepository
    rates: RateRepository
    ledger: CreditLedger
    plans: PlanRepository
    subscriptions: SubscriptionRepository
    resources: ResourceRegistry
    reports: Reports
    health: StorageHealth
    archive: TenantArchive
    livekit_accounts: LiveKitAccounts
    webhooks: WebhookLog
    tracks: TrackLog
    finished_rooms: FinishedRooms
    snapshots: SnapshotLog
    retention: Retention
    usage_source: UsageSource
    rollups: RollupRepository
    rollup_leases: RollupLeases
    errors: ErrorLog
    metrics: MetricLog
    sales: SaleBook
    erasure: Erasure
    refused_starts: RefusedStarts
    trial_sessions: TrialSessions
    funnels: FunnelRepository
    funnel_events: FunnelEvents
    funnel_days: FunnelDays
    # Seconds a job that writes batch after batch (the reaper) leaves between two, so that the
    # requests waiting to write get their turn: 0 where writers do not queue for one lock.
    batch_pause_seconds: float

    async def migrate(self) -> None:
        """Create or upgrade what the store needs (tables, indexes); safe to run again and from
        several processes at once."""
        ...

    async def close(self) -> None:
        """Release connections; the storage is not used afterwards."""
        ...
