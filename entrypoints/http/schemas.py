"""Request and response bodies (msgspec Structs) and their mapping to and from the domain."""

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

import msgspec
from litestar.params import QueryParameter

from application.credits.running_cost import SessionView
from application.pagination import Page
from application.reports.report_cost_model import CostModelReport
from application.trials.get_limits import Limits
from domain.charging import Estimate
from domain.cost_model import Fit, Prediction, Unfitted
from domain.credits import (
    MAX_CREDITS_PER_MINUTE,
    MAX_CREDITS_PER_UNIT,
    MAX_GRANT,
    MAX_METER_CREDITS,
    MAX_METER_RATES,
    MAX_PER,
    Alert,
    Balance,
    LedgerEntry,
    Rate,
)
from domain.events import BatchOutcome, Distribution, Event
from domain.livekit import LiveKitAccount
from domain.plans import MAX_LIMIT, Plan, Subscription, TrialStatus
from domain.reports import ResourceActivity, UsageStats, WatchTime
from domain.rollups import UsageFigures
from domain.session import Session
from domain.snapshots import MAX_COUNT, MeasuredSnapshot
from domain.tenants import TenantSettings
from domain.usage import Usage

Timestamp = Annotated[datetime, msgspec.Meta(tz=True, description="RFC 3339 with an offset")]
Quantity = int | Decimal  # JSON numbers decode into Decimal exactly
Meters = dict[str, Quantity]
MetersOut = dict[str, int | str]  # decimals leave as strings of plain digits


def meters_out(usage: Usage) -> MetersOut:
    """Decimals as plain digits: str() and msgspec would write 0.000000001 as "1E-9"."""
    return {m: q if isinstance(q, int) else format(q, "f") for m, q in usage.items()}


# Integers as every store holds them (MongoDB's are signed 64-bit).
Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
AttributeValue = str | Int64 | float | bool
JSONObject = dict[str, Any]


class StartSessionBody(msgspec.Struct, kw_only=True):
    kind: str
    resource_id: str
    id: str | None = None
    subject_id: str | None = None
    client_key: str | None = None
    started_at: Timestamp | None = None
    attributes: dict[str, AttributeValue] = {}


class HeartbeatBody(msgspec.Struct, kw_only=True):
    at: Timestamp | None = None


class ExitBody(msgspec.Struct, kw_only=True):
    at: Timestamp | None = None
    status: str = "completed"
    reason: str | None = None
    summary: JSONObject | None = None
    usage: Meters = {}


class EventBody(msgspec.Struct, kw_only=True):
    session_id: str
    sequence_no: int
    type: str
    at: Timestamp
    category: str | None = None
    label: str | None = None
    data: JSONObject | None = None
    meters: Meters = {}


class EventBatchBody(msgspec.Struct, kw_only=True):
    # Each event is decoded on its own, so one bad event does not sink the batch.
    events: list[msgspec.Raw]


class ChargeOut(msgspec.Struct):
    credits: int
    balance_after: int
    warning: str | None


class SessionOut(msgspec.Struct):
    id: str
    kind: str
    resource_id: str
    subject_id: str | None
    client_key: str | None
    status: str
    started_at: datetime
    last_seen_at: datetime
    ended_at: datetime | None
    duration_seconds: float | None
    attributes: dict[str, AttributeValue]
    usage: MetersOut
    event_count: int
    event_gaps: list[tuple[int, int]]
    summary: JSONObject | None
    exit_reason: str | None
    charge: ChargeOut | None
    charge_state: str
    # While an active session of a rated kind runs: its charge if it ended now. warning:
    # credits_low (below the tenant's low_balance_credits) or credits_exhausted (below zero).
    charge_estimate: ChargeOut | None = None

    @classmethod
    def of(cls, s: Session, estimate: Estimate | None = None) -> "SessionOut":
        charge = s.charge and ChargeOut(s.charge.credits, s.charge.balance_after, s.charge.warning)
        return cls(
            id=s.id,
            kind=s.kind,
            resource_id=s.resource_id,
            subject_id=s.subject_id,
            client_key=s.client_key,
            status=s.status.value,
            started_at=s.started_at,
            last_seen_at=s.last_seen_at,
            ended_at=s.ended_at,
            duration_seconds=s.duration_seconds,
            attributes=s.attributes,
            usage=meters_out(s.usage),
            event_count=s.event_count,
            event_gaps=s.event_gaps,
            summary=s.summary,
            exit_reason=s.exit_reason,
            charge=charge,
            charge_state=s.charge_state.value,
            charge_estimate=estimate
            and ChargeOut(estimate.credits, estimate.balance_after, estimate.warning),
        )

    @classmethod
    def of_view(cls, view: SessionView) -> "SessionOut":
        return cls.of(view.session, view.charge_estimate)


class SessionPage(msgspec.Struct):
    items: list[SessionOut]
    next_cursor: str | None

    @classmethod
    def of(cls, page: Page[Session]) -> "SessionPage":
        return cls([SessionOut.of(s) for s in page.items], page.next_cursor)


class EventOut(msgspec.Struct):
    session_id: str
    sequence_no: int
    type: str
    at: datetime
    category: str | None
    label: str | None
    data: JSONObject | None
    meters: MetersOut

    @classmethod
    def of(cls, e: Event) -> "EventOut":
        meters = meters_out(e.meters)
        return cls(e.session_id, e.sequence_no, e.type, e.at, e.category, e.label, e.data, meters)


class EventPage(msgspec.Struct):
    items: list[EventOut]
    next_cursor: str | None

    @classmethod
    def of(cls, page: Page[Event]) -> "EventPage":
        return cls([EventOut.of(e) for e in page.items], page.next_cursor)


class EventErrorOut(msgspec.Struct):
    index: int
    error: str


class BatchResultOut(msgspec.Struct):
    inserted: int
    duplicates: int
    failed: int
    errors: list[EventErrorOut]

    @classmethod
    def of(cls, outcome: BatchOutcome) -> "BatchResultOut":
        errors = [EventErrorOut(r.index, r.error) for r in outcome.rejections]
        return cls(outcome.inserted, outcome.duplicates, outcome.failed, errors)


class DistributionOut(msgspec.Struct):
    total: int
    counts: dict[str, int]
    percentages: dict[str, float]

    @classmethod
    def of(cls, d: Distribution) -> "DistributionOut":
        return cls(d.total, d.counts, d.percentages)


class StatusOut(msgspec.Struct):
    status: str


# Bounds keep every price and balance inside 64 bits (domain.credits). The fields of a meter's
# rate are checked by the domain, which names the meter; the schema only describes them.
class MeterRateBody(msgspec.Struct):
    per: Annotated[
        Decimal,
        msgspec.Meta(
            description=f"Units priced together: more than 0, at most {MAX_PER}, at most 9 "
            "decimal places"
        ),
    ]
    credits: Annotated[
        int,
        msgspec.Meta(
            description=f"Credits per `per` units: 0-{MAX_METER_CREDITS}, and at most "
            f"{MAX_CREDITS_PER_UNIT} per unit"
        ),
    ]


class RateBody(msgspec.Struct, kw_only=True):
    credits_per_minute: Annotated[int, msgspec.Meta(ge=0, le=MAX_CREDITS_PER_MINUTE)]
    rounding: str = "ceil"
    meter_rates: Annotated[dict[str, MeterRateBody], msgspec.Meta(max_length=MAX_METER_RATES)] = {}


class RateOut(msgspec.Struct):
    kind: str
    credits_per_minute: int
    rounding: str
    meter_rates: dict[str, MeterRateBody]

    @classmethod
    def of(cls, rate: Rate) -> "RateOut":
        meters = {m: MeterRateBody(r.per, r.credits) for m, r in rate.meter_rates.items()}
        return cls(rate.kind, rate.credits_per_minute, rate.rounding.value, meters)


class GrantBody(msgspec.Struct, kw_only=True):
    amount: Annotated[int, msgspec.Meta(ge=1, le=MAX_GRANT)]
    reason: str
    idempotency_key: str
    expires_at: Timestamp | None = None


class LedgerEntryOut(msgspec.Struct):
    id: str
    amount: int
    kind: str
    session_id: str | None
    reason: str | None
    created_at: datetime
    expires_at: datetime | None

    @classmethod
    def of(cls, e: LedgerEntry) -> "LedgerEntryOut":
        return cls(e.id, e.amount, e.kind.value, e.session_id, e.reason, e.created_at, e.expires_at)


class LedgerPage(msgspec.Struct):
    items: list[LedgerEntryOut]
    next_cursor: str | None

    @classmethod
    def of(cls, page: Page[LedgerEntry]) -> "LedgerPage":
        return cls([LedgerEntryOut.of(e) for e in page.items], page.next_cursor)


class CreditsOut(msgspec.Struct):
    subject_id: str
    balance: int
    granted: int
    consumed: int

    @classmethod
    def of(cls, b: Balance) -> "CreditsOut":
        return cls(b.subject_id, b.balance, b.granted, b.consumed)


def setting(low: int, high: int) -> Any:
    """An integer setting, with the domain's bounds in the schema."""
    return Annotated[int, msgspec.Meta(ge=low, le=high)]


class SettingsBody(msgspec.Struct, kw_only=True):
    """Only the fields sent change (UNSET tells "not sent" from null)."""

    overdraft: str | msgspec.UnsetType = msgspec.UNSET
    min_start_credits: setting(0, 10**15) | msgspec.UnsetType = msgspec.UNSET
    idle_timeout_seconds: setting(10, 604_800) | msgspec.UnsetType = msgspec.UNSET
    # Per kind: seconds (10 s to 7 days) or null (never closed for idleness). The values are
    # checked by the domain, which names the kind of a bad one (msgspec would not).
    idle_timeouts: (
        Annotated[
            dict[str, Any],
            msgspec.Meta(
                description="kind: seconds (10 to 604800) or null (never idle-reaped)",
                examples=[{"livekit": 600, "recording": None}],
            ),
        ]
        | msgspec.UnsetType
    ) = msgspec.UNSET
    # null: no cap
    max_session_seconds: setting(60, 366 * 86_400) | msgspec.UnsetType | None = msgspec.UNSET
    late_data_window_seconds: setting(60, 30 * 86_400) | msgspec.UnsetType = msgspec.UNSET
    low_balance_credits: setting(0, 10**15) | msgspec.UnsetType = msgspec.UNSET
    max_batch_events: setting(1, 1000) | msgspec.UnsetType = msgspec.UNSET
    upgrade_url: str | msgspec.UnsetType | None = msgspec.UNSET
    snapshot_retention_days: setting(1, 36500) | msgspec.UnsetType = msgspec.UNSET
    event_retention_days: setting(1, 36500) | msgspec.UnsetType = msgspec.UNSET
    hourly_rollup_retention_days: setting(1, 36500) | msgspec.UnsetType = msgspec.UNSET
    # null keeps daily rollups for good (the default)
    daily_rollup_retention_days: setting(1, 36500) | msgspec.UnsetType | None = msgspec.UNSET

    def changes(self) -> dict[str, Any]:
        return {
            name: value
            for name in self.__struct_fields__
            if (value := getattr(self, name)) is not msgspec.UNSET
        }


class SettingsOut(msgspec.Struct):
    overdraft: str
    min_start_credits: int
    idle_timeout_seconds: int
    idle_timeouts: dict[str, int | None]
    max_session_seconds: int | None
    late_data_window_seconds: int
    low_balance_credits: int
    max_batch_events: int
    upgrade_url: str | None
    snapshot_retention_days: int
    event_retention_days: int
    hourly_rollup_retention_days: int
    daily_rollup_retention_days: int | None

    @classmethod
    def of(cls, s: TenantSettings) -> "SettingsOut":
        return cls(
            s.overdraft.value,
            s.min_start_credits,
            s.idle_timeout_seconds,
            s.idle_timeouts,
            s.max_session_seconds,
            s.late_data_window_seconds,
            s.low_balance_credits,
            s.max_batch_events,
            s.upgrade_url,
            s.snapshot_retention_days,
            s.event_retention_days,
            s.hourly_rollup_retention_days,
            s.daily_rollup_retention_days,
        )


class AlertOut(msgspec.Struct):
    id: str
    kind: str
    subject_id: str
    session_id: str | None
    detail: str
    created_at: datetime

    @classmethod
    def of(cls, a: Alert) -> "AlertOut":
        return cls(a.id, a.kind, a.subject_id, a.session_id, a.detail, a.created_at)


class AlertList(msgspec.Struct):
    items: list[AlertOut]


PlanLimit = Annotated[int, msgspec.Meta(ge=0, le=MAX_LIMIT)] | None  # null: no limit


class PlanLimitsBody(msgspec.Struct, kw_only=True):
    sessions_per_resource: PlanLimit = None
    session_kinds: list[str] = []
    resources_per_month: PlanLimit = None


class PlanBody(msgspec.Struct, kw_only=True):
    default: bool = False
    unlimited: bool = False
    limits: PlanLimitsBody = msgspec.field(default_factory=PlanLimitsBody)


class PlanOut(msgspec.Struct):
    plan_id: str
    default: bool
    unlimited: bool
    limits: PlanLimitsBody

    @classmethod
    def of(cls, plan: Plan) -> "PlanOut":
        limits = PlanLimitsBody(
            sessions_per_resource=plan.limits.sessions_per_resource,
            session_kinds=sorted(plan.limits.session_kinds),
            resources_per_month=plan.limits.resources_per_month,
        )
        return cls(plan.id, plan.default, plan.unlimited, limits)


class SubscriptionBody(msgspec.Struct, kw_only=True):
    plan_id: str
    ends_at: Timestamp
    starts_at: Timestamp | None = None


class SubscriptionOut(msgspec.Struct):
    subject_id: str
    plan_id: str
    starts_at: datetime | None
    ends_at: datetime

    @classmethod
    def of(cls, s: Subscription) -> "SubscriptionOut":
        return cls(s.subject_id, s.plan_id, s.starts_at, s.ends_at)


class LimitsOut(msgspec.Struct):
    plan_id: str | None
    unlimited: bool
    sessions_per_resource: int | None
    resources_per_month: int | None
    resources_this_month: int
    can_register_resource: bool
    subscription_ends_at: datetime | None

    @classmethod
    def of(cls, limits: Limits) -> "LimitsOut":
        return cls(
            limits.plan_id,
            limits.unlimited,
            limits.sessions_per_resource,
            limits.resources_per_month,
            limits.resources_this_month,
            limits.can_register_resource,
            limits.subscription_ends_at,
        )


class ResourceBody(msgspec.Struct, kw_only=True):
    resource_id: str
    kind: str


class ResourceOut(msgspec.Struct):
    subject_id: str
    resource_id: str
    kind: str


class TrialStatusOut(msgspec.Struct):
    resource_id: str
    is_free_trial: bool
    sessions_used: int
    sessions_remaining: int | None
    can_start_session: bool
    requires_upgrade: bool

    @classmethod
    def of(cls, t: TrialStatus) -> "TrialStatusOut":
        return cls(
            t.resource_id,
            t.is_free_trial,
            t.sessions_used,
            t.sessions_remaining,
            t.can_start_session,
            t.requires_upgrade,
        )


class WatchTimeOut(msgspec.Struct):
    subject_id: str
    visit_count: int
    total_seconds: float
    avg_seconds: float
    unique_seconds: float

    @classmethod
    def of(cls, w: WatchTime) -> "WatchTimeOut":
        return cls(w.subject_id, w.visit_count, w.total_seconds, w.avg_seconds, w.unique_seconds)


class WatchTimeReport(msgspec.Struct):
    items: list[WatchTimeOut]


class ResourceActivityOut(msgspec.Struct):
    resource_id: str
    total_sessions: int
    unique_subjects: int
    total_duration_seconds: float
    avg_duration_seconds: float
    active_now: int
    peak_concurrency: int

    @classmethod
    def of(cls, r: ResourceActivity) -> "ResourceActivityOut":
        return cls(
            r.resource_id,
            r.total_sessions,
            r.unique_subjects,
            r.total_duration_seconds,
            r.avg_duration_seconds,
            r.active_now,
            r.peak_concurrency,
        )


class ResourcesReport(msgspec.Struct):
    items: list[ResourceActivityOut]


class UsageStatsOut(msgspec.Struct):
    total_sessions: int
    total_duration_seconds: float
    total_events: int
    meters: MetersOut
    total_credits_consumed: int

    @classmethod
    def of(cls, u: UsageStats) -> "UsageStatsOut":
        return cls(
            u.total_sessions,
            u.total_duration_seconds,
            u.total_events,
            meters_out(u.meters),
            u.total_credits_consumed,
        )


class ActiveOut(msgspec.Struct):
    active: int


# The window of a report or a listing: ?from=…&to=… (timestamps with an offset).
From = Annotated[datetime | None, QueryParameter(name="from")]
To = Annotated[datetime | None, QueryParameter(name="to")]


Percent = Annotated[float, msgspec.Meta(ge=0, le=100)]
Count = Annotated[int, msgspec.Meta(ge=0, le=MAX_COUNT)]


class SnapshotBody(msgspec.Struct, kw_only=True):
    source: str
    at: Timestamp
    cpu_percent: Percent
    memory_percent: Percent
    memory_mb: Annotated[float, msgspec.Meta(ge=0)]
    traffic_bytes_total: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
    concurrent_users: Count
    active_rooms: Count


class SnapshotBatchBody(msgspec.Struct):
    snapshots: list[SnapshotBody]


class SnapshotsStored(msgspec.Struct):
    inserted: int
    duplicates: int


class SnapshotOut(msgspec.Struct):
    source: str
    at: datetime
    cpu_percent: float
    memory_percent: float
    memory_mb: float
    traffic_bytes_total: int
    traffic_bytes: int  # since the previous snapshot of the source
    concurrent_users: int
    active_rooms: int

    @classmethod
    def of(cls, measured: MeasuredSnapshot) -> "SnapshotOut":
        s = measured.snapshot
        return cls(
            s.source,
            s.at,
            s.cpu_percent,
            s.memory_percent,
            s.memory_mb,
            s.traffic_bytes_total,
            measured.traffic_bytes,
            s.concurrent_users,
            s.active_rooms,
        )


class SnapshotPage(msgspec.Struct):
    items: list[SnapshotOut]


class UsageBucketOut(msgspec.Struct):
    """One hour or day. Session figures cover the kinds and resources asked for; server
    figures (traffic, CPU, concurrent users, from snapshots) cover the whole tenant."""

    start: datetime
    end: datetime
    sessions_started: int
    sessions_ended: int
    active_seconds: float  # session-seconds inside the bucket (subject-seconds)
    events: int
    meters: MetersOut  # usage of the sessions that ended in the bucket
    video_minutes: float
    screen_share_minutes: float
    audio_minutes: float
    snapshots: int
    traffic_gb: float
    cpu_percent_avg: float | None
    cpu_percent_max: float | None
    concurrent_users_avg: float | None
    peak_concurrent_users: int | None

    @classmethod
    def of(cls, f: UsageFigures) -> "UsageBucketOut":
        a, load = f.activity, f.load
        measured = load.snapshots > 0
        return cls(
            f.start,
            f.end,
            a.sessions_started,
            a.sessions_ended,
            a.active_seconds,
            a.events,
            meters_out(a.meters),
            round(f.video_minutes, 3),
            round(f.screen_share_minutes, 3),
            round(f.audio_minutes, 3),
            load.snapshots,
            round(f.traffic_gb, 6),
            None if f.cpu_percent_avg is None else round(f.cpu_percent_avg, 3),
            load.cpu_percent_max if measured else None,
            None if f.concurrent_users_avg is None else round(f.concurrent_users_avg, 3),
            load.peak_concurrent_users if measured else None,
        )


class UsageReport(msgspec.Struct):
    bucket: str
    items: list[UsageBucketOut]


class FitOut(msgspec.Struct):
    """A fitted ratio (`value`), or why there is none (`value` null and `detail`)."""

    value: float | None
    r_squared: float | None
    hours_used: int
    detail: str | None = None

    @classmethod
    def of(cls, fit: Fit | Unfitted) -> "FitOut":
        if isinstance(fit, Unfitted):
            return cls(None, None, fit.hours, fit.reason)
        r2 = None if fit.r_squared is None else round(fit.r_squared, 4)
        return cls(round(fit.per_unit, 6), r2, fit.hours)


class PredictionOut(msgspec.Struct):
    users: int
    hours_per_day: float
    days: int
    video_minutes: float
    user_hours: float
    traffic_gb: float | None
    traffic_tb: float | None
    traffic_gb_by_user_hours: float | None
    cpu_percent: float | None
    arithmetic: list[str]

    @classmethod
    def of(cls, p: Prediction) -> "PredictionOut":
        def rounded(value: float | None, places: int = 3) -> float | None:
            return None if value is None else round(value, places)

        return cls(
            p.plan.users,
            p.plan.hours_per_day,
            p.plan.days,
            p.plan.video_minutes,
            p.plan.user_hours,
            rounded(p.traffic_gb),
            rounded(None if p.traffic_gb is None else p.traffic_gb / 1000),
            rounded(p.traffic_gb_by_user_hours),
            rounded(p.cpu_percent),
            p.arithmetic,
        )


class CostModelOut(msgspec.Struct):
    start: datetime = msgspec.field(name="from")
    end: datetime = msgspec.field(name="to")
    hours_with_snapshots: int = 0
    traffic_gb_per_video_minute: FitOut | None = None
    traffic_gb_per_user_hour: FitOut | None = None
    cpu_percent_per_concurrent_user: FitOut | None = None
    prediction: PredictionOut | None = None

    @classmethod
    def of(cls, report: CostModelReport) -> "CostModelOut":
        model, prediction = report.model, report.prediction
        return cls(
            report.start,
            report.end,
            model.hours,
            FitOut.of(model.gb_per_video_minute),
            FitOut.of(model.gb_per_user_hour),
            FitOut.of(model.cpu_percent_per_concurrent_user),
            None if prediction is None else PredictionOut.of(prediction),
        )


class LiveKitUrlBody(msgspec.Struct, kw_only=True):
    url: Annotated[
        str | None,
        msgspec.Meta(description="The LiveKit server's http(s) URL; null: webhooks only"),
    ]


class LiveKitAccountOut(msgspec.Struct):
    api_key: str
    url: str | None

    @classmethod
    def of(cls, account: LiveKitAccount) -> "LiveKitAccountOut":
        return cls(account.api_key, account.url)  # never the secret


class ErrorOut(msgspec.Struct):
    """Every error's envelope (entrypoints/http/errors.py)."""

    error: str
    detail: str


class FieldErrorOut(msgspec.Struct):
    field: str
    message: str


class ValidationErrorOut(msgspec.Struct):
    error: str
    detail: str
    fields: list[FieldErrorOut]
