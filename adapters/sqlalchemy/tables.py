"""The schema. Every tenant's rows are keyed by tenant_id, so no query can cross tenants."""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    false,
)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC in and out: PostgreSQL keeps timestamptz; SQLite, which has no time zones,
    keeps naive UTC text that sorts in time order."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData()

tenants = Table(
    "tenants",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("settings", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant_id", String(36), nullable=False, index=True),
    Column("role", String(16), nullable=False),
    Column("secret_hash", String(64), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("name", String(200)),
    Column("expires_at", UTCDateTime),
    Column("revoked_at", UTCDateTime),
    Column("last_used_at", UTCDateTime),
    Column("resources", JSON),  # a scoped key's resource ids; NULL: the whole tenant
)

sessions = Table(
    "sessions",
    metadata,
    Column("tenant_id", String(36), primary_key=True),
    Column("id", String(36), primary_key=True),
    Column("kind", String(64), nullable=False),
    Column("resource_id", String(200), nullable=False),
    Column("subject_id", String(200)),
    Column("client_key", String(200)),
    Column("status", String(16), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    Column("ended_at", UTCDateTime),
    Column("attributes", JSON, nullable=False),
    Column("summary", JSON),
    Column("exit_reason", Text),
    Column("event_count", Integer, nullable=False),
    Column("max_sequence_no", BigInteger, nullable=False),
    Column("charge_state", String(16), nullable=False),
    Column("charge_credits", BigInteger),
    Column("charge_balance_after", BigInteger),
    Column("charge_warning", String(64)),
    # How many corrections the charge has had: each writes one ledger entry of this revision.
    Column("charge_revision", Integer, nullable=False, server_default="0"),
    # The numbers of the events retention deleted, as ranges [[first, last], …] (no gaps).
    Column("deleted_events", JSON, nullable=False, server_default="[]"),
    Index("ix_sessions_started", "tenant_id", "started_at", "id"),
    Index("ix_sessions_idle", "tenant_id", "status", "last_seen_at"),
    Index("ix_sessions_resource", "tenant_id", "resource_id", "started_at"),
    Index("ix_sessions_subject", "tenant_id", "subject_id", "started_at"),
    Index("ix_sessions_client_key", "tenant_id", "client_key", "started_at"),
    Index("ix_sessions_kind", "tenant_id", "kind", "started_at"),
    Index("ix_sessions_charge_state", "tenant_id", "charge_state"),
    # Rollups find the sessions that were still running in an hour by their end.
    Index("ix_sessions_ended", "tenant_id", "ended_at"),
    # Watch time reads a resource's sessions viewer by viewer, in start order, without sorting;
    # trial limits count a subject's sessions on a resource with it too.
    Index(
        "ix_sessions_resource_viewers",
        "tenant_id",
        "resource_id",
        "subject_id",
        "started_at",
        "ended_at",
    ),
)

# A session's usage, one row per meter. Sums are integer nano-units so SQLite adds decimals exactly;
# is_decimal remembers whether the meter is shown as an integer or a decimal.
session_meters = Table(
    "session_meters",
    metadata,
    Column("tenant_id", String(36), primary_key=True),
    Column("session_id", String(36), primary_key=True),
    Column("meter", String(64), primary_key=True),
    Column("quantity_nanos", BigInteger, nullable=False),
    Column("is_decimal", Boolean, nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("tenant_id", String(36), primary_key=True),
    Column("session_id", String(36), primary_key=True),
    Column("sequence_no", BigInteger, primary_key=True),
    Column("type", String(64), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("category", String(64)),
    Column("label", String(64)),
    Column("data", JSON),
    Column("meters", JSON),
    # Retention deletes a tenant's oldest events a batch at a time.
    Index("ix_events_at", "tenant_id", "at"),
)

rates = Table(
    "rates",
    metadata,
    Column("tenant_id", String(36), primary_key=True),
    Column("kind", String(64), primary_key=True),
    Column("credits_per_minute", BigInteger, nullable=False),
    Column("rounding", String(16), nullable=False),
    Column("meter_rates", JSON, nullable=False),  # {"meter": {"per": "decimal", "credits": int}}
)

# Grants, charges and their adjustments. A grant's idempotency key and a (session, revision) are
# each unique in their tenant, so neither a retried grant nor a second charge or adjustment of one
# revision of a session's charge can be written (the charge is revision 0).
ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant_id", String(36), nullable=False),
    Column("subject_id", String(200), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("reason", Text),
    Column("session_id", String(36)),
    Column("session_revision", Integer),
    Column("idempotency_key", String(200)),
    Column("expires_at", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_ledger_subject", "tenant_id", "subject_id", "created_at", "id"),
    Index("ux_ledger_idempotency_key", "tenant_id", "idempotency_key", unique=True),
    Index("ux_ledger_session_revision", "tenant_id", "session_id", "session_revision", unique=True),
)

# Each subject's sums of its ledger, kept by the database's own triggers on ledger_entries
# (migration 0030) in the transaction of whatever writes an entry: settlements read a row, not a
# whole ledger. A subject's row goes with its last entry.
ledger_balances = Table(
    "ledger_balances",
    metadata,
    Column("tenant_id", String(36), primary_key=True),
    Column("subject_id", String(200), primary_key=True),
    Column("granted", BigInteger, nullable=False),
    Column("consumed", BigInteger, nullable=False),
    Column("entries", BigInteger, nullable=False),
)

# The subjects' ledgers an erasure holds, on SQLite (Erasure.with_ledgers_held): a settlement
# claims nothing while its subject's is held. PostgreSQL holds them with the advisory locks its
# settlements take (settlement_batches.ledger_lock), and leaves this table empty.
ledger_holds = Table(
    "ledger_holds",
    metadata,
    Column("tenant_id", String(36), primary_key=True),
    Column("subject_id", String(200), primary_key=True),
    Column("holder", String(36), nullable=False),
    Column("held_until", UTCDateTime, nullable=False),
)

# The pseudonym of each subject whose erasure is under way (Erasure.pseudonym_for): an erasure
# that fails midway leaves it here, so that erasing again finishes under the same one, and its
# pseudonym's sessions are not charged meanwhile (UnfinishedErasures).
erasures_under_way = Table(
    "erasures_under_way",
    metadata,
    Column("tenant_id", String(36), primary_key=True),
    Column("subject_id", String(200), primary_key=True),
    Column("pseudonym", String(64), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Index("ux_erasures_under_way_pseudonym", "tenant_id", "pseudonym", unique=True),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant_id", String(36), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("subject_id", String(200), nullable=False),
    Column("session_id", String(36)),
    Column("detail", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_alerts_created", "tenant_id", "created_at"),
)

plans = Table(
    "plans",
    metadata,
    Column("tenant_id", String(36), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("is_default", Boolean, nullable=False),
    Column("unlimited", Boolean, nullable=False),
    Column("limits", JSON, nullable=False),
)

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("tenant_id", String(36), primary_key=True),
    Column("subject_id", String(200), primary_key=True),
    Column("plan_id", String(64), nullable=False),
    Column("starts_at", UTCDateTime),
    Column("ends_at", UTCDateTime, nullable=False),
)

# Every subscription put, the subject's `number`-th from 1; `subscriptions` keeps the current one.
subscription_history = Table(
    "subscription_history",
    metadata,
    Column("tenant_id", String(36), primary_key=True),
    Column("subject_id", String(200), primary_key=True),
    Column("number", Integer, primary_key=True),
    Column("plan_id", String(64), nullable=False),
    Column("starts_at", UTCDateTime),
    Column("ends_at", UTCDateTime, nullable=False),
    Column("set_at", UTCDateTime, nullable=False),
)

# Starts refused for payment (402), counted per subject, kind, reason and day: one upsert that adds
# one, so concurrent refusals each count. Keyed by day first, as the trial report reads days.
refused_starts = Table(
    "refused_starts",
    metadata,
    Column("tenant_id", String(36), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("subject_id", String(200), primary_key=True),
    Column("kind", String(64), primary_key=True),
    Column("reason", String(32), primary_key=True),
    Column("count", BigInteger, nullable=False),
)

subject_resources = Table(
    "subject_resources",
    metadata,
    Column("tenant_id", String(36), primary_key=True),
    Column("subject_id", String(200), primary_key=True),
    Column("resource_id", String(200), primary_key=True),
    Column("kind", String(64), nullable=False),
    Column("registered_at", UTCDateTime, nullable=False),
    Index("ix_subject_resources_month", "tenant_id", "subject_id", "registered_at"),
)

# A funnel's stages as JSON: [{"name": …, "match": {"type": …, "label": …, "category": …}}].
funnels = Table(
    "funnels",
    metadata,
    Column("tenant_id", String(36), primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("kind", String(64), nullable=False),
    Column("stages", JSON, nullable=False),
)

# A funnel rolled up over the sessions started in one day of the tenant's calendar: the day
# (what it counted, whether final, its whole tally) and its rows per resource and dimension values.
funnel_days = Table(
    "funnel_days",
    metadata,
    Column("tenant_id", String(36), primary_key=True),
    Column("funnel", String(64), primary_key=True),
    Column("day_start", UTCDateTime, primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("final", Boolean, nullable=False),
    Column("tally", JSON, nullable=False),  # domain.funnels.FunnelTally.document()
    # The keys its rows are split by (NULL: stored before 0033; its groupings tell them).
    Column("dimensions", JSON, nullable=True),
    # Where the day ends in the zone it was rolled up in (NULL: stored before 0034).
    Column("day_end", UTCDateTime, nullable=True),
)

funnel_day_rows = Table(
    "funnel_day_rows",
    metadata,
    Column("tenant_id", String(36), primary_key=True),
    Column("funnel", String(64), primary_key=True),
    Column("day_start", UTCDateTime, primary_key=True),
    Column("resource_id", String(200), primary_key=True),
    Column("dimensions", Text, primary_key=True),  # as rollup_activity.dimensions
    Column("tally", JSON, nullable=False),
)

# The day's rows added up per group of each grouping (application.funnels.group_tallies): what a
# report grouped per resource or dimension reads.
funnel_day_groups = Table(
    "funnel_day_groups",
    metadata,
    Column("tenant_id", String(36), nullable=False),
    Column("funnel", String(64), nullable=False),
    Column("day_start", UTCDateTime, nullable=False),
    Column("grouping", String(80), nullable=False),
    Column("grp", Text, nullable=True),  # the resource or the dimension's value; NULL: without
    Column("tally", JSON, nullable=False),
    Index("ix_funnel_day_groups", "tenant_id", "funnel", "grouping", "day_start"),
)

livekit_accounts = Table(
    "livekit_accounts",
    metadata,
    Column("api_key", String(200), primary_key=True),
    Column("tenant_id", String(36), nullable=False, index=True),
    Column("api_secret", String(500), nullable=False),
    Column("url", Text),  # the LiveKit server reconciliation asks; None: webhooks only
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("tenant_id", String(36), primary_key=True),
    Column("id", String(200), primary_key=True),
    Column("received_at", UTCDateTime, nullable=False),
    Index("ix_webhook_deliveries_received", "tenant_id", "received_at"),
)

# Rooms whose room_finished was handled, by room sid (application.livekit.ports.FinishedRooms).
finished_rooms = Table(
    "finished_rooms",
    metadata,
    Column("tenant_id", String(36), primary_key=True),
    Column("room_sid", String(200), primary_key=True),
    Column("finished_at", UTCDateTime, nullable=False),
    Index("ix_finished_rooms_finished", "tenant_id", "finished_at"),
)

track_intervals = Table(
    "track_intervals",
    metadata,
    Column("tenant_id", String(36), primary_key=True),
    Column("session_id", String(36), primary_key=True),
    Column("track_sid", String(200), primary_key=True),
    Column("meter", String(64), nullable=False),
    Column("published_at", UTCDateTime),
    Column("unpublished_at", UTCDateTime),
    Column("end_from_stay", Boolean, nullable=False, server_default=false()),
    Column("counted", Boolean, nullable=False),
    Index("ix_track_intervals_unpublished", "tenant_id", "unpublished_at"),
)

snapshots = Table(
    "snapshots",
    metadata,
    Column("tenant_id", String(36), primary_key=True),
    Column("source", String(200), primary_key=True),
    Column("at", UTCDateTime, primary_key=True),
    Column("cpu_percent", Float, nullable=False),
    Column("memory_percent", Float, nullable=False),
    Column("memory_mb", Float, nullable=False),
    Column("traffic_bytes_total", BigInteger, nullable=False),
    Column("concurrent_users", Integer, nullable=False),
    Column("active_rooms", Integer, nullable=False),
)

# A rolled-up bucket: one rollup_load row (the servers' load; it marks the bucket as rolled up)
# and a rollup_activity row per kind, resource and dimension values with anything in it.
rollup_load = Table(
    "rollup_load",
    metadata,
    Column("tenant_id", String(36), primary_key=True),
    Column("period", String(8), primary_key=True),
    Column("bucket_start", UTCDateTime, primary_key=True),
    Column("snapshots", BigInteger, nullable=False),
    Column("traffic_bytes", BigInteger, nullable=False),
    Column("cpu_percent_sum", Float, nullable=False),
    Column("cpu_percent_max", Float, nullable=False),
    Column("concurrent_users_sum", BigInteger, nullable=False),
    Column("peak_concurrent_users", BigInteger, nullable=False),
)


def activity_figures() -> list[Column[Any]]:
    """What a rollup row keeps of its sessions' activity (domain.rollups.Activity)."""
    return [
        Column("sessions_started", BigInteger, nullable=False),
        Column("sessions_ended", BigInteger, nullable=False),
        Column("active_seconds", Float, nullable=False),
        Column("events", BigInteger, nullable=False),
        Column("meters", JSON, nullable=False),  # decimals as strings (quantities.to_json)
        Column("track_seconds", JSON, nullable=False),
        # The sessions that ended in the bucket, by status, and their seconds from start to end.
        Column("ended_statuses", JSON, nullable=False, server_default="{}"),
        Column("ended_seconds", Float, nullable=False, server_default="0"),
        # Errors naming the row's sessions, the fatal ones, and their sales per currency:
        # completed ones counted, and their net less the refunds' (decimal strings).
        Column("errors", BigInteger, nullable=False, server_default="0"),
        Column("fatal_errors", BigInteger, nullable=False, server_default="0"),
        Column("sales", JSON, nullable=False, server_default="{}"),
        Column("sales_net", JSON, nullable=False, server_default="{}"),
    ]


rollup_activity = Table(
    "rollup_activity",
    metadata,
    Column("tenant_id", String(36), primary_key=True),
    Column("period", String(8), primary_key=True),
    Column("bucket_start", UTCDateTime, primary_key=True),
    Column("kind", String(64), primary_key=True),
    Column("resource_id", String(200), primary_key=True),
    # The values of the tenant's dimensions, as JSON text of [[key, value], …] by key ("": none).
    Column("dimensions", Text, primary_key=True, server_default=""),
    *activity_figures(),
)

# PostgreSQL's bucket's activity summed per kind and group of each grouping (domain.rollups.
# group_sums), written with the bucket: what the usage report adds up when it chooses nothing
# but the grouping. A bucket without a grouping's rows (rolled up before they were kept, or a
# resource's rows erased since) is added up from rollup_activity.
rollup_groups = Table(
    "rollup_groups",
    metadata,
    Column("tenant_id", String(36), nullable=False),
    Column("period", String(8), nullable=False),
    Column("bucket_start", UTCDateTime, nullable=False),
    Column("grouping", String(80), nullable=False),
    Column("kind", String(64), nullable=False),
    # The group as rollup_sums reads a row's: the resource id, a dimension's value as its JSON
    # string, NULL for the whole or for sessions without the dimension.
    Column("grp", Text, nullable=True),
    *activity_figures(),
    Index("ix_rollup_groups", "tenant_id", "period", "grouping", "bucket_start"),
)

# Who is rolling up a tenant now (until when), and where its next run starts.
rollup_leases = Table(
    "rollup_leases",
    metadata,
    Column("tenant_id", String(36), primary_key=True),
    Column("holder", String(36)),
    Column("held_until", UTCDateTime),
    Column("resume_from", UTCDateTime),
    Column("rewind_to", UTCDateTime),  # late data asks the next run to resume here at the latest
    Column("cut", Text),  # TenantSettings.rollup_cut of the rollups made (null: not recorded)
)


def _amount(name: str, nullable: bool = False) -> list[Column[int]]:
    """An exact amount (domain.money) as whole units and nano-units (0-999,999,999): two integer
    columns, because 10^15 in nano-units overflows BIGINT, and integer sums stay exact on SQLite."""
    return [
        Column(f"{name}_units", BigInteger, nullable=nullable),
        Column(f"{name}_nanos", BigInteger, nullable=nullable),
    ]


# Kiosk telemetry, one row per client id in a tenant. What the queries filter, group and sum on
# are columns; the rest of a record is its JSON document.
errors = Table(
    "errors",
    metadata,
    Column("tenant_id", String(36), primary_key=True),
    Column("id", String(200), primary_key=True),
    Column("at", UTCDateTime, nullable=False),
    Column("device_id", String(200), nullable=False),
    Column("session_id", String(200)),
    Column("app_version", String(200), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("type", String(200), nullable=False),
    Column("code", String(200)),
    Column("message", Text, nullable=False),
    Column("fingerprint", String(200), nullable=False),
    Column("sale_lost", Boolean, nullable=False),
    Column("loss_currency", String(3)),
    *_amount("loss", nullable=True),
    Column("document", JSON, nullable=False),  # build, stack trace, breadcrumbs, context, …
    Index("ix_errors_at", "tenant_id", "at", "id"),
    Index("ix_errors_fingerprint", "tenant_id", "fingerprint", "at"),
)

performance_metrics = Table(
    "performance_metrics",
    metadata,
    Column("tenant_id", String(36), primary_key=True),
    Column("id", String(200), primary_key=True),
    Column("device_id", String(200), nullable=False),
    Column("app_version", String(200), nullable=False),
    Column("type", String(64), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("duration_ms", Float, nullable=False),
    Column("success", Boolean, nullable=False),
    Column("document", JSON, nullable=False),  # session, error code, breakdown, context
    Index("ix_performance_metrics_started", "tenant_id", "started_at"),
)

# A metric's breakdown again, a row per step, for the step percentiles; deleted with its metric.
performance_steps = Table(
    "performance_steps",
    metadata,
    Column("tenant_id", String(36), primary_key=True),
    Column("metric_id", String(200), primary_key=True),
    Column("step", String(200), primary_key=True),
    Column("duration_ms", Float, nullable=False),
)

sales = Table(
    "sales",
    metadata,
    Column("tenant_id", String(36), primary_key=True),
    Column("id", String(200), primary_key=True),
    Column("session_id", String(200), nullable=False),
    Column("device_id", String(200), nullable=False),
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(16), nullable=False),
    Column("payment_method", String(16), nullable=False),
    Column("refund_of", String(200)),
    *_amount("gross"),
    *_amount("discount"),
    *_amount("tax"),
    *_amount("net"),
    Column("items", JSON, nullable=False),  # unit prices as strings, so they come back exact
    Column("attributes", JSON, nullable=False),
    # Each attribute as a report groups by it (domain.sales.attribute_text): SQLite can neither
    # give back a stored float as JSON spells it nor find every key by a JSON path.
    Column("attribute_texts", JSON, nullable=False),
    Column("settlement_state", String(16), nullable=False),
    Column("settlement_date", Date),
    Column("processed_at", UTCDateTime),
    Column("batch_id", String(200)),
    Index("ix_sales_occurred", "tenant_id", "occurred_at", "id"),
    Index("ix_sales_session", "tenant_id", "session_id"),
    Index("ix_sales_refund_of", "tenant_id", "refund_of"),  # what a sale's refunds gave back
)
