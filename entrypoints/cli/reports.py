"""`sessionmeter report`: reports."""

import json
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime

import click

from application.funnels.report_funnel import ReportFunnel, ReportFunnelQuery
from application.reports.report_daily import RESOURCE, ReportDaily, ReportDailyQuery
from application.reports.report_watch_time import ReportWatchTime, ReportWatchTimeQuery
from application.telemetry.report_errors import ErrorsReport, ReportErrors, ReportErrorsQuery
from application.telemetry.report_performance import (
    PerformanceReport,
    ReportPerformance,
    ReportPerformanceQuery,
)
from application.telemetry.report_sales import ReportSales, ReportSalesQuery, SalesReport
from application.trials.report_trials import ReportTrials, ReportTrialsQuery
from domain.daily_summary import DailyFigures, DailySummary
from domain.error_reports import ErrorGroupBy
from domain.funnels import FunnelFigures
from domain.money import amount_text
from domain.performance import GroupBy, PerformanceRow
from domain.refusals import Refusal
from domain.reports import WatchTime
from domain.trial_report import TrialReport
from entrypoints.cli.options import INSTANT, tenant_option
from entrypoints.cli.output import echo_rows, format_option
from entrypoints.cli.running import run, tenant_named
from entrypoints.container import Container


@click.group()
def report() -> None:
    """Reports."""


WATCH_TIME_COLUMNS = ("subject_id", "visit_count", "total_seconds", "avg_seconds", "unique_seconds")


@report.command("watch-time")
@tenant_option(required=True)
@click.option("--resource", "resource_id", required=True, help="The webinar, room, … reported on.")
@format_option
@click.pass_context
def watch_time(ctx: click.Context, tenant_name: str, resource_id: str, output: str) -> None:
    """Watch time per viewer of one resource (overlapping sessions counted once)."""

    async def job(c: Container) -> list[WatchTime]:
        tenant = await tenant_named(c, tenant_name)
        report_watch_time: ReportWatchTime = c.use_cases.report_watch_time()
        return await report_watch_time(ReportWatchTimeQuery(tenant.id, resource_id))

    rows = [
        (w.subject_id, w.visit_count, w.total_seconds, w.avg_seconds, w.unique_seconds)
        for w in run(ctx, job)
    ]
    echo_rows(output, WATCH_TIME_COLUMNS, rows)


window_options = [
    click.option("--from", "start", type=INSTANT, help="From this instant (RFC 3339), inclusive."),
    click.option("--to", "end", type=INSTANT, help="To this instant (RFC 3339), exclusive."),
]


def with_window(command: Callable[..., None]) -> Callable[..., None]:
    for option in reversed(window_options):
        command = option(command)
    return command


ERROR_COLUMNS = (
    "fingerprint", "type", "code", "sample_message", "count", "devices", "sessions",
    "first_seen", "last_seen", "app_versions", "severity", "sales_lost", "estimated_loss",
)  # fmt: skip


@report.command("errors")
@tenant_option(required=True)
@with_window
@click.option("--app-version", help="Only errors of this app version.")
@click.option("--device", "device_id", help="Only errors of this device.")
@click.option(
    "--group-by",
    type=click.Choice([g.value for g in ErrorGroupBy]),
    help="day: a row per fault and calendar day of the tenant's time zone.",
)
@format_option
@click.pass_context
def errors(
    ctx: click.Context,
    tenant_name: str,
    start: datetime | None,
    end: datetime | None,
    app_version: str | None,
    device_id: str | None,
    group_by: str | None,
    output: str,
) -> None:
    """Device errors grouped by fingerprint (one fault across devices and builds), most
    frequent first; by day, oldest day first, with the day in the first column."""

    async def job(c: Container) -> ErrorsReport:
        tenant = await tenant_named(c, tenant_name)
        report_errors: ReportErrors = c.use_cases.report_errors()
        calendar = tenant.settings.calendar
        query = ReportErrorsQuery(tenant.id, start, end, app_version, device_id, group_by, calendar)
        return await report_errors(query)

    columns = ERROR_COLUMNS if group_by is None else ("day", *ERROR_COLUMNS)
    rows = [[getattr(g, c) for c in columns] for g in run(ctx, job).items]
    echo_rows(output, columns, rows)


PERFORMANCE_COLUMNS = (
    "type", "group", "count", "success_rate", "p50_ms", "p95_ms", "p99_ms", "max_ms", "breakdown",
)  # fmt: skip


@report.command("performance")
@tenant_option(required=True)
@with_window
@click.option("--type", "type_", help="Only metrics of this type (capture, print, …).")
@click.option(
    "--group-by",
    type=click.Choice([g.value for g in GroupBy]),
    default=GroupBy.APP_VERSION.value,
    show_default=True,
)
@format_option
@click.pass_context
def performance(
    ctx: click.Context,
    tenant_name: str,
    start: datetime | None,
    end: datetime | None,
    type_: str | None,
    group_by: str,
    output: str,
) -> None:
    """Exact duration percentiles (nearest rank) per type and app version or device."""

    async def job(c: Container) -> PerformanceReport:
        tenant = await tenant_named(c, tenant_name)
        report_performance: ReportPerformance = c.use_cases.report_performance()
        return await report_performance(
            ReportPerformanceQuery(tenant.id, type_, start, end, group_by)
        )

    rows = [
        [*(getattr(r, c) for c in PERFORMANCE_COLUMNS[:-1]), _steps(r)] for r in run(ctx, job).items
    ]
    echo_rows(output, PERFORMANCE_COLUMNS, rows)


def _steps(row: PerformanceRow) -> dict[str, dict[str, float]]:
    return {step: vars(times) for step, times in row.breakdown.items()}


FUNNEL_COLUMNS = (
    "name", "reached", "conversion_from_previous", "conversion_from_start", "dropped_here",
    "median_seconds_in_stage",
)  # fmt: skip


@report.command("funnel")
@click.argument("name")
@tenant_option(required=True)
@with_window
@format_option
@click.pass_context
def funnel(
    ctx: click.Context,
    name: str,
    tenant_name: str,
    start: datetime | None,
    end: datetime | None,
    output: str,
) -> None:
    """Where the sessions of a funnel's kind stopped (default: the last 30 days): a row per
    stage; JSON is the whole report, the table ends with the sessions and their exit statuses
    (CSV has the stage rows alone)."""

    async def job(c: Container) -> FunnelFigures:
        tenant = await tenant_named(c, tenant_name)
        report_funnel: ReportFunnel = c.use_cases.report_funnel()
        return await report_funnel(ReportFunnelQuery(tenant.id, name, start, end, tenant.settings))

    figures = run(ctx, job)
    if output == "json":
        click.echo(json.dumps(asdict(figures)))
        return
    echo_rows(
        output, FUNNEL_COLUMNS, [[getattr(s, c) for c in FUNNEL_COLUMNS] for s in figures.stages]
    )
    if output == "table":
        exits = "  ".join(f"{status} {n}" for status, n in figures.exit_statuses.items())
        click.echo(f"\nsessions {figures.sessions}  {exits}")


DAILY_COLUMNS = (
    "group", "sessions_started", "sessions_ended", "completed", "abandoned", "timed_out",
    "completion_rate", "average_duration_seconds", "events", "errors", "fatal_errors", "sales",
    "funnel_conversion",
)  # fmt: skip


@report.command("daily")
@tenant_option(required=True)
@click.option("--date", "day", help="YYYY-MM-DD, a day of the tenant's time zone [default: today]")
@click.option(
    "--group-by",
    default=RESOURCE,
    show_default=True,
    help="resource_id, or attributes.<key> of a declared dimension.",
)
@click.option("--kind", help="Only sessions of this kind.")
@format_option
@click.pass_context
def daily(
    ctx: click.Context,
    tenant_name: str,
    day: str | None,
    group_by: str,
    kind: str | None,
    output: str,
) -> None:
    """One day of the tenant's calendar per resource or dimension, from the rollups: a row per
    group; JSON is the API's object."""

    async def job(c: Container) -> DailySummary:
        tenant = await tenant_named(c, tenant_name)
        report_daily: ReportDaily = c.use_cases.report_daily()
        query = ReportDailyQuery(tenant.id, day, group_by, kind, tenant.settings)
        return await report_daily(query)

    summary = run(ctx, job)
    rows = [[_daily_cell(g, c) for c in DAILY_COLUMNS] for g in summary.groups]
    if output == "json":
        bounds = {"start": summary.day.start.isoformat(), "end": summary.day.end.isoformat()}
        items = [dict(zip(DAILY_COLUMNS, row, strict=True)) for row in rows]
        click.echo(json.dumps({"date": summary.day.label, **bounds, "items": items}))
        return
    echo_rows(output, DAILY_COLUMNS, rows)


def _daily_cell(figures: DailyFigures, column: str) -> object:
    if column == "sales":  # per currency, exact
        return {c: {"count": s.count, "net": amount_text(s.net)} for c, s in figures.sales.items()}
    return getattr(figures, column)


SALES_COLUMNS = (
    "group", "currency", "count", "gross", "discount", "tax", "net", "refunded", "by_method",
    "by_state",
)  # fmt: skip


@report.command("sales")
@tenant_option(required=True)
@with_window
@click.option(
    "--group-by",
    default="device_id",
    show_default=True,
    help="device_id, day (of the tenant's time zone) or attributes.<key>.",
)
@click.option("--currency", help="Only sales in this ISO 4217 currency.")
@format_option
@click.pass_context
def sales(
    ctx: click.Context,
    tenant_name: str,
    start: datetime | None,
    end: datetime | None,
    group_by: str,
    currency: str | None,
    output: str,
) -> None:
    """Sales per device, day or attribute, per currency (currencies are never added up)."""

    async def job(c: Container) -> SalesReport:
        tenant = await tenant_named(c, tenant_name)
        report_sales: ReportSales = c.use_cases.report_sales()
        calendar = tenant.settings.calendar
        query = ReportSalesQuery(tenant.id, start, end, group_by, currency, calendar)
        return await report_sales(query)

    rows = [[getattr(t, c) for c in SALES_COLUMNS] for t in run(ctx, job).items]
    echo_rows(output, SALES_COLUMNS, rows)


@report.command("trials")
@tenant_option(required=True)
@with_window
@format_option
@click.pass_context
def trials(
    ctx: click.Context,
    tenant_name: str,
    start: datetime | None,
    end: datetime | None,
    output: str,
) -> None:
    """How free trials went (default: the last 30 days): trial subjects and the sessions they
    used, who ran out, who then paid, and the starts refused per reason. JSON is the API's
    object; the table and CSV have one row, a column per refusal reason."""

    async def job(c: Container) -> TrialReport:
        tenant = await tenant_named(c, tenant_name)
        report_trials: ReportTrials = c.use_cases.report_trials()
        calendar = tenant.settings.calendar
        return await report_trials(ReportTrialsQuery(tenant.id, start, end, calendar))

    found = run(ctx, job)
    window = {"from": found.start.isoformat(), "to": found.end.isoformat()}
    figures = {
        "trial_subjects": found.use.subjects,
        "sessions_used": found.use.sessions,
        "avg_sessions_per_subject": found.avg_sessions_per_subject,
        "subjects_exhausted": found.refusals.subjects_exhausted,
        "conversions": found.use.conversions,
        "conversion_rate": found.conversion_rate,
    }
    refused = {reason.value: found.refusals.of(reason) for reason in Refusal}
    if output == "json":
        click.echo(json.dumps({**window, **figures, "refused_starts": refused}))
        return
    row = {**window, **figures, **refused}
    echo_rows(output, list(row), [list(row.values())])
