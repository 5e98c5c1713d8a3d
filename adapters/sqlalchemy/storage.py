from pathlib import Path
from types import ModuleType

from sqlalchemy import Connection, text

from adapters.sqlalchemy.archive import SqlTenantArchive
from adapters.sqlalchemy.credits import SqlCreditLedger, SqlRateRepository
from adapters.sqlalchemy.engine import (
    DEFAULT_CONNECTIONS,
    batch_pause_seconds,
    create_driver_engine,
    create_engine,
    pool_sizes,
    reading,
)
from adapters.sqlalchemy.erasure import SqlErasure
from adapters.sqlalchemy.errors import raises_storage_errors
from adapters.sqlalchemy.events import SqlEventLog
from adapters.sqlalchemy.funnel_days import SqlFunnelDays
from adapters.sqlalchemy.funnels import SqlFunnelEvents, SqlFunnelRepository
from adapters.sqlalchemy.health import SqlHealth
from adapters.sqlalchemy.livekit import (
    SqlFinishedRooms,
    SqlLiveKitAccounts,
    SqlTrackLog,
    SqlWebhookLog,
)
from adapters.sqlalchemy.plans import (
    SqlPlanRepository,
    SqlResourceRegistry,
    SqlSubscriptionRepository,
)
from adapters.sqlalchemy.refused_starts import SqlRefusedStarts
from adapters.sqlalchemy.remembered_sessions import RememberedSessions
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

    def __init__(
        self,
        url: str,
        connections: int | None = None,
        wait_seconds: float | None = None,
        serving: bool = False,
    ) -> None:
        """`connections`: how many PostgreSQL connections this process may keep (None:
        engine.DEFAULT_CONNECTIONS); `wait_seconds`: how long a PostgreSQL server that does not
        answer a connect is waited for (None: the driver's 60 s);
        `serving`: a server's storage (engine.create_engine says what changes)."""
        driver_pool, pool = pool_sizes(connections or DEFAULT_CONNECTIONS)
        self.engine = create_engine(url, pool, wait_seconds=wait_seconds, serving=serving)
        # The hot paths' statements sent to the driver go through connections of their own
        # (engine.create_driver_engine says why).
        self.driver_engine = create_driver_engine(
            url, self.engine, driver_pool, wait_seconds, serving
        )
        # The sessions this process last wrote (PostgreSQL): a start's or a batch's, for the
        # next batch, exit or sign of life of the session to start from (remembered_sessions).
        remembered = RememberedSessions()
        self.sessions = SqlSessionRepository(self.engine, self.driver_engine, remembered)
        self.events = SqlEventLog(self.engine, self.driver_engine, remembered)
        self.tenants = SqlTenantRepository(self.engine)
        self.api_keys = SqlApiKeyRepository(self.engine)
        self.rates = SqlRateRepository(self.engine)
        self.ledger = SqlCreditLedger(self.engine)
        self.plans = SqlPlanRepository(self.engine)
        self.subscriptions = SqlSubscriptionRepository(self.engine)
        self.resources = SqlResourceRegistry(self.engine)
        self.reports = SqlReports(self.engine)
        self.health = SqlHealth(reading(self.engine))  # SQLite: no write lock to wait for
        self.archive = SqlTenantArchive(self.engine)
        self.livekit_accounts = SqlLiveKitAccounts(self.engine)
        self.webhooks = SqlWebhookLog(self.driver_engine)
        self.tracks = SqlTrackLog(self.driver_engine)
        self.finished_rooms = SqlFinishedRooms(self.engine, self.driver_engine)
        self.snapshots = SqlSnapshotLog(self.engine)
        self.retention = SqlRetention(self.engine)
        self.usage_source = SqlUsageSource(self.engine)
        self.rollups = SqlRollupRepository(self.engine)
        self.rollup_leases = SqlRollupLeases(self.engine)
        self.errors = SqlErrorLog(self.engine)
        self.metrics = SqlMetricLog(self.engine)
        self.sales = SqlSaleBook(self.engine)
        self.erasure = SqlErasure(self.engine)
        self.refused_starts = SqlRefusedStarts(self.engine)
        self.trial_sessions = SqlTrialSessions(self.engine)
        self.funnels = SqlFunnelRepository(self.engine)
        self.funnel_events = SqlFunnelEvents(self.engine)
        self.funnel_days = SqlFunnelDays(self.engine)
        self.batch_pause_seconds = batch_pause_seconds(self.engine)

    async def migrate(self) -> None:
        """Bring the schema to the newest revision; safe to run again and from several processes."""
        # Imported here: alembic is half a second of every process's start (each CLI command,
        # each server worker) that only a migration needs. Imported before the transaction
        # begins: on SQLite that takes the write lock, which every other writer waits for.
        from alembic import command

        async with self.engine.begin() as conn:
            await conn.run_sync(_upgrade, command)

    async def close(self) -> None:
        await release_writers_connection(self.engine)
        await self.engine.dispose()
        if self.driver_engine is not self.engine:
            await self.driver_engine.dispose()


def _upgrade(connection: Connection, command: ModuleType) -> None:
    from alembic.config import Config

    if connection.dialect.name == "postgresql":
        connection.execute(text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
