from dataclasses import dataclass, field
from datetime import datetime

from application.funnels.ports import FunnelDay
from domain.calendar import Period
from domain.charging import Settlement
from domain.credits import Alert, LedgerEntry, Rate
from domain.error_reports import ErrorReport
from domain.events import Event
from domain.funnels import Funnel
from domain.livekit import LiveKitAccount, TrackReport
from domain.performance import Metric
from domain.plans import Plan, Registration, Subscription, SubscriptionSet
from domain.refusals import RefusedStart
from domain.rollups import Rollup
from domain.sales import Sale
from domain.session import Session
from domain.snapshots import Snapshot
from domain.tenants import ApiKey, Tenant


@dataclass
class MemoryStore:
    """The data of one in-memory storage, shared by its repositories."""

    tenants: dict[str, Tenant] = field(default_factory=dict)
    api_keys: dict[str, ApiKey] = field(default_factory=dict)  # by secret hash
    sessions: dict[tuple[str, str], Session] = field(default_factory=dict)
    # (tenant_id, session_id) -> sequence_no -> event
    events: dict[tuple[str, str], dict[int, Event]] = field(default_factory=dict)
    rates: dict[tuple[str, str], Rate] = field(default_factory=dict)  # (tenant_id, kind)
    ledger: list[LedgerEntry] = field(default_factory=list)
    # (tenant_id, subject_id) of the ledgers an erasure holds (Erasure.with_ledgers_held)
    held_ledgers: set[tuple[str, str]] = field(default_factory=set)
    # (tenant_id, subject_id) -> the pseudonym of its erasure under way and when it began
    # (Erasure.pseudonym_for)
    erasures_under_way: dict[tuple[str, str], tuple[str, datetime]] = field(default_factory=dict)
    alerts: list[Alert] = field(default_factory=list)
    plans: dict[tuple[str, str], Plan] = field(default_factory=dict)  # (tenant_id, plan id)
    subscriptions: dict[tuple[str, str], Subscription] = field(default_factory=dict)
    # (tenant_id, subject_id): oldest first
    subscription_history: dict[tuple[str, str], list[SubscriptionSet]] = field(default_factory=dict)
    resources: dict[tuple[str, str, str], Registration] = field(default_factory=dict)
    funnels: dict[tuple[str, str], Funnel] = field(default_factory=dict)  # (tenant_id, name)
    # (tenant_id, funnel name, day start)
    funnel_days: dict[tuple[str, str, datetime], FunnelDay] = field(default_factory=dict)
    livekit_accounts: dict[str, LiveKitAccount] = field(default_factory=dict)  # by API key
    # (tenant_id, webhook id) -> when it was handled
    webhooks: dict[tuple[str, str], datetime] = field(default_factory=dict)
    # (tenant_id, session_id, track_sid) -> what is known of the track, and whether it counted
    tracks: dict[tuple[str, str, str], tuple[TrackReport, bool]] = field(default_factory=dict)
    finished_rooms: dict[tuple[str, str], datetime] = field(default_factory=dict)
    snapshots: dict[tuple[str, str, datetime], Snapshot] = field(default_factory=dict)
    rollups: dict[tuple[str, Period, datetime], Rollup] = field(default_factory=dict)
    # tenant_id -> (lease holder, held until, where the next run resumes, the rollups' cut)
    rollup_leases: dict[str, tuple[str | None, datetime | None, datetime | None, str | None]] = (
        field(default_factory=dict)
    )
    # tenant_id -> where late data asks the next rollup run to resume at the latest
    rollup_rewinds: dict[str, datetime] = field(default_factory=dict)
    # Telemetry by (tenant_id, client id)
    errors: dict[tuple[str, str], ErrorReport] = field(default_factory=dict)
    metrics: dict[tuple[str, str], Metric] = field(default_factory=dict)
    sales: dict[tuple[str, str], Sale] = field(default_factory=dict)
    # (tenant_id, refusal) -> how many times it happened that day
    refused_starts: dict[tuple[str, RefusedStart], int] = field(default_factory=dict)

    def balance_of(self, tenant_id: str, subject_id: str) -> int:
        return sum(
            e.amount for e in self.ledger if (e.tenant_id, e.subject_id) == (tenant_id, subject_id)
        )

    def record(self, session: Session, settlement: Settlement, at: datetime) -> None:
        """Write what `settlement` records for `session` (as read) and settle it."""
        if (entry := settlement.ledger_entry(session, at)) is not None:
            self.ledger.append(entry)
        if (alert := settlement.alert_record(session, at)) is not None:
            self.alerts.append(alert)
        session.settle(settlement.charge)
