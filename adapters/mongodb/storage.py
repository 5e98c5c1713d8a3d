"""The `mongodb://` storage family: every repository over one pymongo async client."""

from typing import Any
from urllib.parse import parse_qs, urlsplit

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from adapters.mongodb.archive import MongoTenantArchive
from adapters.mongodb.credits import MongoCreditLedger, MongoRateRepository
from adapters.mongodb.documents import Document
from adapters.mongodb.erasure import MongoErasure
from adapters.mongodb.errors import raises_storage_errors
from adapters.mongodb.events import MongoEventLog
from adapters.mongodb.funnel_days import MongoFunnelDays
from adapters.mongodb.funnels import MongoFunnelEvents, MongoFunnelRepository
from adapters.mongodb.health import MongoHealth
from adapters.mongodb.indexes import INDEXES, RETIRED
from adapters.mongodb.livekit import (
    MongoFinishedRooms,
    MongoLiveKitAccounts,
    MongoTrackLog,
    MongoWebhookLog,
)
from adapters.mongodb.plans import (
    MongoPlanRepository,
    MongoResourceRegistry,
    MongoSubscriptionRepository,
)
from adapters.mongodb.refused_starts import MongoRefusedStarts
from adapters.mongodb.reports import MongoReports
from adapters.mongodb.retention import MongoRetention
from adapters.mongodb.rollups import MongoRollupLeases, MongoRollupRepository, MongoUsageSource
from adapters.mongodb.sessions import MongoSessionRepository
from adapters.mongodb.snapshots import MongoSnapshotLog
from adapters.mongodb.telemetry import MongoErrorLog, MongoMetricLog, MongoSaleBook
from adapters.mongodb.tenants import MongoApiKeyRepository, MongoTenantRepository
from adapters.mongodb.trial_sessions import MongoTrialSessions
from application.storage import Storage

DEFAULT_DATABASE = "sessionmeter"


# What `wait_seconds` bounds, each unless the URL sets it: the wait for a server to use (one
# that is down); the connect, and a server's check, which pymongo times with the connect's
# timeout (one that stopped answering: its pool is cleared, and the operations waiting on it
# fail); and how often a server is checked.
WAITS = ("serverSelectionTimeoutMS", "connectTimeoutMS", "heartbeatFrequencyMS")


def connect(url: str, wait_seconds: float | None = None) -> AsyncMongoClient[Document]:
    """A client of the URL's servers on which an operation fails when no server answered for
    about `wait_seconds` (a server down: within it; one that stopped answering: within three
    times it, its next check, that check's timeout and a retry's wait for a server), or at
    pymongo's own times (None: 30 s for a server down, up to a minute for one that stopped)."""
    # tz_aware: datetimes come back in UTC with their offset, as the domain requires.
    options: dict[str, Any] = {"tz_aware": True, "connect": False}
    query = {name.lower() for name in parse_qs(urlsplit(url).query)}
    if wait_seconds is not None:
        waits = dict.fromkeys(WAITS, round(wait_seconds * 1000))
        waits["heartbeatFrequencyMS"] = max(500, waits["heartbeatFrequencyMS"])  # its least
        options |= {name: ms for name, ms in waits.items() if name.lower() not in query}
    return AsyncMongoClient(url, **options)


@raises_storage_errors
class MongoStorage(Storage):
    """The database named in the URL (default `sessionmeter`). Constructing does no I/O."""

    def __init__(self, url: str, wait_seconds: float | None = None) -> None:
        self.client = connect(url, wait_seconds)
        db: AsyncDatabase[Document] = self.client.get_default_database(DEFAULT_DATABASE)
        self.db = db
        self.sessions = MongoSessionRepository(db)
        self.events = MongoEventLog(db)
        self.tenants = MongoTenantRepository(db)
        self.api_keys = MongoApiKeyRepository(db)
        self.rates = MongoRateRepository(db)
        self.ledger = MongoCreditLedger(db)
        self.plans = MongoPlanRepository(db)
        self.subscriptions = MongoSubscriptionRepository(db)
        self.resources = MongoResourceRegistry(db)
        self.reports = MongoReports(db)
        self.health = MongoHealth(db)
        self.archive = MongoTenantArchive(db)
        self.livekit_accounts = MongoLiveKitAccounts(db)
        self.webhooks = MongoWebhookLog(db)
        self.tracks = MongoTrackLog(db)
        self.finished_rooms = MongoFinishedRooms(db)
        self.snapshots = MongoSnapshotLog(db)
        self.retention = MongoRetention(db)
        self.usage_source = MongoUsageSource(db)
        self.rollups = MongoRollupRepository(db)
        self.rollup_leases = MongoRollupLeases(db)
        self.errors = MongoErrorLog(db)
        self.metrics = MongoMetricLog(db)
        self.sales = MongoSaleBook(db)
        self.erasure = MongoErasure(db)
        self.refused_starts = MongoRefusedStarts(db)
        self.trial_sessions = MongoTrialSessions(db)
        self.funnels = MongoFunnelRepository(db)
        self.funnel_events = MongoFunnelEvents(db)
        self.funnel_days = MongoFunnelDays(db)
        self.batch_pause_seconds = 0.0

    async def migrate(self) -> None:
        """Create every collection's indexes; safe to run again and from several processes."""
        for collection, names in RETIRED.items():
            existing = await self.db[collection].index_information()
            for name in names:
                if name in existing:
                    await self.db[collection].drop_index(name)
        for collection, indexes in INDEXES.items():
            await self.db[collection].create_indexes(indexes)

    async def close(self) -> None:
        await self.client.close()
