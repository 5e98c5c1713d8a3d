from pathlib import Path

from sqlalchemy import Connection, text

from adapters.sqlalchemy.archive import SqlTenantArchive
from adapters.sqlalchemy.credits import SqlCreditLedger, SqlRateRepository
from adapters.sqlalchemy.engine import batch_pause_seconds, create_engine, create_report_engine
from adapters.sqlalchemy.erasure import SqlErasure
from adapters.sqlalchemy.errors import raises_storage_errors
from adapters.sqlalchemy.events import SqlEventLog
from adapters.sqlalchemy.funnel_days import SqlFunnelDays
from adapters.sqlalchemy.funnels import SqlFunnelEvents, SqlFunnelRepository
from adapters.sqlalchemy.health import SqlHealth
from adapters.sqlalchemy.livekit import SqlLiveKitAccounts, SqlTrackLog, SqlWebhookLog
from adapters.sqlalchemy.plans import (
    SqlPlanRepository,
    SqlResourceRegistry,
    SqlSubscriptionRepository,
)
from adapters.sqlalchemy.refused_starts import SqlRefusedStarts
from adapters.sqlalchemy.reports import SqlReports
from adapters.sqlalchemy.retention import SqlRetention
from adapters.sqlalchemy.rollups import SqlRollupLeases, SqlRollupRepository, SqlUsageSource
from adapters.sqlalchemy.sessions import SqlSessionRepository
from adapters.sqlalchemy.snapshots import SqlSnapshotLog
from adapters.sqlalchemy.sqlite_statements import release_writers_connection
from adapters.sqlalchemy.telemetry import SqlErrorLog, SqlMetricLog, SqlSaleBook
from adapters.sqlalchemy.tenants import SqlApiKeyRepository, SqlTenantRepository
from adapters.sqlalchemy.trial_sessions import SqlTrialSessions
from application.storage import Storage

MIGRATIONS = Path(__file__).parent / "migrations"
# Any constant will do: it only has to be the same in every process that migrates.
MIGRATION_LOCK = 7_415_962_301


@raises_storage_errors
class SqlAlchemyStorage(Storage):
    """Every SQL repository over one engine: the `sqlite://` and `postgresql://` storage family."""

    def __init__(self, url: str) -> None:
        # The request paths' repositories find rows by key; reports and jobs read ranges
        # (engine.create_engine says why they plan apart).
        self.engine = create_engine(url)
        self.report_engine = create_report_engine(url, self.engine)
        self.sessions = SqlSessionRepository(self.engine)
        self.events = SqlEventLog(self.engine)
        self.tenants = SqlTenantRepository(self.engine)
        self.api_keys = SqlApiKeyRepository(self.engine)
        self.rates = SqlRateRepository(self.engine)
        self.ledger = SqlCreditLedger(self.engine)
        self.plans = SqlPlanRepository(self.engine)
        self.subscriptions = SqlSubscriptionRepository(self.engine)
        self.resources = SqlResourceRegistry(self.engine)
        self.livekit_accounts = SqlLiveKitAccounts(self.engine)
        self.webhooks = SqlWebhookLog(self.engine)
        self.tracks = SqlTrackLog(self.engine)
        self.snapshots = SqlSnapshotLog(self.engine)
        self.refused_starts = SqlRefusedStarts(self.engine)
        self.trial_sessions = SqlTrialSessions(self.engine)
        self.reports = SqlReports(self.report_engine)
        self.health = SqlHealth(self.report_engine)
        self.archive = SqlTenantArchive(self.report_engine)
        self.retention = SqlRetention(self.report_engine)
        self.usage_source = SqlUsageSource(self.report_engine)
        self.rollups = SqlRollupRepository(self.report_engine)
        self.rollup_leases = SqlRollupLeases(self.report_engine)
        self.errors = SqlErrorLog(self.report_engine)
        self.metrics = SqlMetricLog(self.report_engine)
        self.sales = SqlSaleBook(self.report_engine)
        self.erasure = SqlErasure(self.report_engine)
        self.funnels = SqlFunnelRepository(self.report_engine)
        self.funnel_events = SqlFunnelEvents(self.report_engine)
        self.funnel_days = SqlFunnelDays(self.report_engine)
        self.batch_pause_seconds = batch_pause_seconds(self.engine)

    async def migrate(self) -> None:
        """Bring the schema to the newest revision; safe to run again and from several processes."""
        async with self.engine.begin() as conn:
            await conn.run_sync(_upgrade)

    async def close(self) -> None:
        await release_writers_connection(self.engine)
        await self.engine.dispose()
        if self.report_engine is not self.engine:
            await self.report_engine.dispose()


def _upgrade(connection: Connection) -> None:
    # Imported here: alembic is half a second of every process's start (each CLI command, each
    # server worker) that only a migration needs.
    from alembic import command
    from alembic.config import Config

    if connection.dialect.name == "postgresql":
        connection.execute(text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
