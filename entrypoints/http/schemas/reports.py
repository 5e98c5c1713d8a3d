"""The bodies of reports: watch time, resources, a subject's totals, usage buckets and the cost
model."""

from datetime import datetime

import msgspec

from application.reports.report_cost_model import CostModelReport
from domain.cost_model import Fit, Prediction, Unfitted
from domain.daily_summary import DailyFigures, DailySummary
from domain.money import amount_text
from domain.reports import ResourceActivity, UsageStats, WatchTime
from domain.rollups import UsageFigures
from entrypoints.http.schemas.common import MetersOut, meters_out


class WatchTimeOut(msgspec.Struct):
    subject_id: str | None  # null with group_by
    group: str | None  # with group_by: the dimension's value (null: sessions without it)
    visit_count: int
    total_seconds: float
    avg_seconds: float
    unique_seconds: float  # grouped: each viewer's union of visits in the group, summed

    @classmethod
    def of(cls, w: WatchTime) -> "WatchTimeOut":
        return cls(
            w.subject_id,
            w.group,
            w.visit_count,
            w.total_seconds,
            w.avg_seconds,
            w.unique_seconds,
        )


class ResourceActivityOut(msgspec.Struct):
    resource_id: str | None  # null with group_by
    group: str | None  # with group_by: the dimension's value (null: sessions without it)
    total_sessions: int
    unique_subjects: int
    total_duration_seconds: float
    avg_duration_seconds: float
    active_now: int
    peak_concurrency: int
    unique_visitors: int  # subjects plus anonymous client keys
    ended_sessions: int  # no longer active

    @classmethod
    def of(cls, r: ResourceActivity) -> "ResourceActivityOut":
        return cls(
            r.resource_id,
            r.group,
            r.total_sessions,
            r.unique_subjects,
            r.total_duration_seconds,
            r.avg_duration_seconds,
            r.active_now,
            r.peak_concurrency,
            r.unique_visitors,
            r.exited_sessions,
        )


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


class UsageBucketOut(msgspec.Struct):
    """One hour, day, week or month. Session figures cover the kinds and resources asked for;
    server figures (traffic, CPU, concurrent users, from snapshots) cover the whole tenant."""

    start: datetime
    end: datetime
    label: str  # in the tenant's time zone: 2026-12-01, 2026-W49, 2026-12 (hours: UTC)
    group: str | None  # with group_by: the dimension's value (null: sessions without it)
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
            f.bucket.start,
            f.bucket.end,
            f.bucket.label,
            f.group,
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


class DailyErrorsOut(msgspec.Struct):
    count: int
    fatal: int


class CurrencySalesOut(msgspec.Struct):
    count: int  # completed sales
    net: str  # their net less the refunds', exact


class DailyGroupOut(msgspec.Struct):
    group: str | None  # the resource, or the dimension's value (null: sessions without it)
    sessions_started: int
    sessions_ended: int
    completed: int
    abandoned: int
    timed_out: int
    completion_rate: float | None
    average_duration_seconds: float | None
    events: int
    errors: DailyErrorsOut
    sales: dict[str, CurrencySalesOut]  # per currency; net as a decimal string
    funnel_conversion: float | None  # the summary's funnel's, when it has one

    @classmethod
    def of(cls, f: DailyFigures) -> "DailyGroupOut":
        return cls(
            f.group,
            f.sessions_started,
            f.sessions_ended,
            f.completed,
            f.abandoned,
            f.timed_out,
            f.completion_rate,
            f.average_duration_seconds,
            f.events,
            DailyErrorsOut(f.errors, f.fatal_errors),
            {c: CurrencySalesOut(s.count, amount_text(s.net)) for c, s in f.sales.items()},
            f.funnel_conversion,
        )


class DailySummaryOut(msgspec.Struct):
    date: str  # the local day, YYYY-MM-DD
    start: datetime  # its bounds in UTC
    end: datetime
    funnel: str | None  # the funnel whose conversion each item gives (null: none applies)
    items: list[DailyGroupOut]

    @classmethod
    def of(cls, s: DailySummary) -> "DailySummaryOut":
        day = s.day
        groups = [DailyGroupOut.of(g) for g in s.groups]
        return cls(day.label, day.start, day.end, s.funnel, groups)


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
