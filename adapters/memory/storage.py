from adapters.memory.archive import MemoryTenantArchive
from adapters.memory.credits import MemoryCreditLedger, MemoryRateRepository
from adapters.memory.erasure import MemoryErasure
from adapters.memory.events import MemoryEventLog
from adapters.memory.funnel_days import MemoryFunnelDays
from adapters.memory.funnels import MemoryFunnelEvents, MemoryFunnelRepository
from adapters.memory.health import MemoryHealth
from adapters.memory.livekit import (
    MemoryFinishedRooms,
    MemoryLiveKitAccounts,
    MemoryTrackLog,
    MemoryWebhookLog,
)
from adapters.memory.plans import (
    MemoryPlanRepository,
    MemoryResourceRegistry,
    MemorySubscriptionRepository,
)
from adapters.memory.refused_starts import MemoryRefusedStarts
from adapters.memory.reports import MemoryReports
from adapters.memory.retention import MemoryRetention
from adapters.memory.rollups import MemoryRollupLeases, MemoryRollupRepository, MemoryUsageSource
from adapters.memory.sessions import MemorySessionRepository
from adapters.memory.snapshots import MemorySnapshotLog
from adapters.memory.store import MemoryStore
from adapters.memory.telemetry import MemoryErrorLog, MemoryMetricLog, MemorySaleBook
from adapters.memory.tenants import MemoryApiKeyRepository, MemoryTenantRepository
from adapters.memory.trial_sessions import MemoryTrialSessions
from application.storage import Storage


class MemoryStorage(Storage):
    """Every in-memory repository over one store: the `memory://` storage family."""

    def __init__(self) -> None:
        store = MemoryStore()
        self.sessions = MemorySessionRepository(store)
        self.events = MemoryEventLog(store)
        self.tenants = MemoryTenantRepository(store)
        self.api_keys = MemoryApiKeyRepository(store)
        self.rates = MemoryRateRepository(store)
        self.ledger = MemoryCreditLedger(store)
        self.plans = MemoryPlanRepository(store)
        self.subscriptions = MemorySubscriptionRepository(store)
        self.resources = MemoryResourceRegistry(store)
        self.reports = MemoryReports(store)
        self.health = MemoryHealth()
        self.archive = MemoryTenantArchive(store)
        self.livekit_accounts = MemoryLiveKitAccounts(store)
        self.webhooks = MemoryWebhookLog(store)
        self.tracks = MemoryTrackLog(store)
        self.finished_rooms = MemoryFinishedRooms(store)
        self.snapshots = MemorySnapshotLog(store)
        self.retention = MemoryRetention(store)
        self.usage_source = MemoryUsageSource(store)
        self.rollups = MemoryRollupRepository(store)
        self.rollup_leases = MemoryRollupLeases(store)
        self.errors = MemoryErrorLog(store)
        self.metrics = MemoryMetricLog(store)
        self.sales = MemorySaleBook(store)
        self.erasure = MemoryErasure(store)
        self.refused_starts = MemoryRefusedStarts(store)
        self.trial_sessions = MemoryTrialSessions(store)
        self.funnels = MemoryFunnelRepository(store)
        self.funnel_events = MemoryFunnelEvents(store)
        self.funnel_days = MemoryFunnelDays(store)
        self.batch_pause_seconds = 0.0

    async def migrate(self) -> None:
        """Nothing to create."""

    async def close(self) -> None:
        """Nothing to release."""
