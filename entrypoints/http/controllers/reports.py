"""Reports: watch time, resources, what is active, a subject's totals, usage and the cost model."""

from typing import Annotated, Any

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, QueryParameter

from application.funnels.report_funnel import ReportFunnel, ReportFunnelQuery
from application.reports.report_active import ReportActive, ReportActiveQuery
from application.reports.report_cost_model import ReportCostModel, ReportCostModelQuery
from application.reports.report_daily import RESOURCE, ReportDaily, ReportDailyQuery
from application.reports.report_resources import ReportResources, ReportResourcesQuery
from application.reports.report_usage import ReportUsage, ReportUsageQuery
from application.reports.report_usage_stats import ReportUsageStats, ReportUsageStatsQuery
from application.reports.report_watch_time import ReportWatchTime, ReportWatchTimeQuery
from application.telemetry.report_errors import ReportErrors, ReportErrorsQuery
from application.telemetry.report_performance import ReportPerformance, ReportPerformanceQuery
from application.telemetry.report_sales import ReportSales, ReportSalesQuery
from application.tenants.authenticate import Principal
from application.trials.report_trials import ReportTrials, ReportTrialsQuery
from domain.cost_model import Plan
from domain.errors import InvalidInput
from domain.tenants import Role
from entrypoints.http.auth import AUTH, NEEDS_ADMIN, needs
from entrypoints.http.errors import documented
from entrypoints.http.openapi import rules_of
from entrypoints.http.schemas.common import From, Listing, To, attribute_filters
from entrypoints.http.schemas.errors import ErrorGroupOut
from entrypoints.http.schemas.funnels import FunnelReportOut
from entrypoints.http.schemas.performance import PerformanceRowOut
from entrypoints.http.schemas.reports import (
    ActiveOut,
    CostModelOut,
    DailySummaryOut,
    ResourceActivityOut,
    UsageBucketOut,
    UsageReport,
    UsageStatsOut,
    WatchTimeOut,
)
from entrypoints.http.schemas.sales import SalesTotalOut
from entrypoints.http.schemas.trial_report import TrialReportOut

TELEMETRY_REPORT = {
    401: AUTH,
    403: NEEDS_ADMIN,
    422: "a parameter is invalid (named in `fields`): the window, group_by, currency",
}


class ReportsController(Controller):
    path = "/"
    tags = ["reports"]
    opt = needs(Role.ADMIN)

    @get(
        "/reports/watch-time",
        summary="Watch time per viewer of one resource, or per value of a dimension",
        operation_id="reportWatchTime",
        description=rules_of(ReportWatchTime),
    )
    async def watch_time(
        self,
        request: Request[Any, Any, Any],
        resource_id: FromQuery[str],
        caller: NamedDependency[Principal],
        report_watch_time: NamedDependency[ReportWatchTime],
        start: From = None,
        end: To = None,
        group_by: FromQuery[str | None] = None,
    ) -> Listing[WatchTimeOut]:
        settings, where = caller.tenant.settings, attribute_filters(request)
        rows = await report_watch_time(
            ReportWatchTimeQuery(
                caller.tenant.id, resource_id, start, end, settings, where, group_by
            )
        )
        return Listing([WatchTimeOut.of(r) for r in rows])

    @get(
        "/reports/resources",
        summary="Sessions, viewers, durations, now and peak per resource or dimension value",
        operation_id="reportResources",
        description=rules_of(ReportResources),
    )
    async def resources(
        self,
        request: Request[Any, Any, Any],
        caller: NamedDependency[Principal],
        report_resources: NamedDependency[ReportResources],
        kind: FromQuery[str | None] = None,
        start: From = None,
        end: To = None,
        group_by: FromQuery[str | None] = None,
    ) -> Listing[ResourceActivityOut]:
        settings, where = caller.tenant.settings, attribute_filters(request)
        query = ReportResourcesQuery(caller.tenant.id, kind, start, end, settings, where, group_by)
        rows = await report_resources(query)
        return Listing([ResourceActivityOut.of(r) for r in rows])

    @get(
        "/reports/active",
        summary="Sessions active now",
        operation_id="reportActive",
        description=rules_of(ReportActive),
    )
    async def active(
        self,
        caller: NamedDependency[Principal],
        report_active: NamedDependency[ReportActive],
        resource_id: FromQuery[str | None] = None,
    ) -> ActiveOut:
        found = await report_active(ReportActiveQuery(caller.tenant.id, resource_id))
        return ActiveOut(found.active)

    @get(
        "/accounts/{subject_id:str}/usage-stats",
        summary="One subject's totals",
        operation_id="reportUsageStats",
        opt=needs(Role.APP),
        description=rules_of(ReportUsageStats),
    )
    async def usage_stats(
        self,
        subject_id: FromPath[str],
        caller: NamedDependency[Principal],
        report_usage_stats: NamedDependency[ReportUsageStats],
        start: From = None,
        end: To = None,
    ) -> UsageStatsOut:
        stats = await report_usage_stats(
            ReportUsageStatsQuery(caller.tenant.id, subject_id, start, end)
        )
        return UsageStatsOut.of(stats)

    @get(
        "/reports/usage",
        summary="Usage by hour, day, week or month, from the rollups",
        operation_id="reportUsage",
        description=rules_of(ReportUsage),
    )
    async def usage(
        self,
        request: Request[Any, Any, Any],
        caller: NamedDependency[Principal],
        report_usage: NamedDependency[ReportUsage],
        bucket: FromQuery[str] = "hour",
        start: From = None,
        end: To = None,
        kind: FromQuery[str | None] = None,
        resource_id: FromQuery[str | None] = None,
        group_by: FromQuery[str | None] = None,
    ) -> UsageReport:
        found = await report_usage(
            ReportUsageQuery(
                caller.tenant.id,
                bucket,
                start,
                end,
                kind,
                resource_id,
                caller.tenant.settings,
                attribute_filters(request),
                group_by,
            )
        )
        return UsageReport(bucket, [UsageBucketOut.of(f) for f in found])

    @get(
        "/reports/daily",
        summary="One day of the tenant's calendar per resource or dimension, from the rollups",
        operation_id="reportDaily",
        description=rules_of(ReportDaily),
    )
    async def daily(
        self,
        caller: NamedDependency[Principal],
        report_daily: NamedDependency[ReportDaily],
        day: Annotated[str | None, QueryParameter(name="date")] = None,
        group_by: FromQuery[str] = RESOURCE,
        kind: FromQuery[str | None] = None,
    ) -> DailySummaryOut:
        query = ReportDailyQuery(caller.tenant.id, day, group_by, kind, caller.tenant.settings)
        return DailySummaryOut.of(await report_daily(query))

    @get(
        "/reports/cost-model",
        summary="Traffic and CPU per unit of use, fitted over hourly rollups; a plan priced",
        operation_id="reportCostModel",
        description=rules_of(ReportCostModel),
    )
    async def cost_model(
        self,
        caller: NamedDependency[Principal],
        report_cost_model: NamedDependency[ReportCostModel],
        start: From = None,
        end: To = None,
        users: FromQuery[int | None] = None,
        hours_per_day: FromQuery[float | None] = None,
        days: FromQuery[int | None] = None,
    ) -> CostModelOut:
        plan = None
        given = [v is not None for v in (users, hours_per_day, days)]
        if any(given):
            if not all(given):
                raise InvalidInput("users", "users, hours_per_day and days go together")
            plan = Plan(users or 0, hours_per_day or 0.0, days or 0)
        report = await report_cost_model(ReportCostModelQuery(caller.tenant.id, start, end, plan))
        return CostModelOut.of(report)

    @get(
        "/reports/trials",
        summary="Free trials: who used them, ran out, paid; starts refused and why",
        operation_id="reportTrials",
        description=rules_of(ReportTrials),
        responses=documented(
            {
                401: AUTH,
                403: NEEDS_ADMIN,
                422: "`from` or `to` is invalid, or `from` is not before `to`",
            }
        ),
    )
    async def trials(
        self,
        caller: NamedDependency[Principal],
        report_trials: NamedDependency[ReportTrials],
        start: From = None,
        end: To = None,
    ) -> TrialReportOut:
        calendar = caller.tenant.settings.calendar
        report = await report_trials(ReportTrialsQuery(caller.tenant.id, start, end, calendar))
        return TrialReportOut.of(report)

    @get(
        "/reports/errors",
        summary="Faults grouped by fingerprint (per day, if asked), most frequent first",
        operation_id="reportErrors",
        description=rules_of(ReportErrors),
        responses=documented(TELEMETRY_REPORT),
    )
    async def errors(
        self,
        caller: NamedDependency[Principal],
        report_errors: NamedDependency[ReportErrors],
        start: From = None,
        end: To = None,
        app_version: FromQuery[str | None] = None,
        device_id: FromQuery[str | None] = None,
        group_by: FromQuery[str | None] = None,
    ) -> Listing[ErrorGroupOut]:
        calendar = caller.tenant.settings.calendar
        query = ReportErrorsQuery(
            caller.tenant.id, start, end, app_version, device_id, group_by, calendar
        )
        report = await report_errors(query)
        return Listing([ErrorGroupOut.of(g) for g in report.items])

    @get(
        "/reports/performance",
        summary="Exact duration percentiles per type and app version or device",
        operation_id="reportPerformance",
        description=rules_of(ReportPerformance),
        responses=documented(TELEMETRY_REPORT),
    )
    async def performance(
        self,
        caller: NamedDependency[Principal],
        report_performance: NamedDependency[ReportPerformance],
        type: FromQuery[str | None] = None,
        start: From = None,
        end: To = None,
        group_by: FromQuery[str] = "app_version",
    ) -> Listing[PerformanceRowOut]:
        query = ReportPerformanceQuery(caller.tenant.id, type, start, end, group_by)
        report = await report_performance(query)
        return Listing([PerformanceRowOut.of(r) for r in report.items])

    @get(
        "/reports/funnel/{name:str}",
        summary="How far sessions got through a funnel's stages, and where they stopped",
        operation_id="reportFunnel",
        description=rules_of(ReportFunnel),
        responses=documented(
            {
                401: AUTH,
                403: NEEDS_ADMIN,
                404: "no such funnel in this tenant",
                422: "a parameter is invalid (named in `fields`): from must be before to; "
                "group_by and attributes.<key> name declared dimensions",
            }
        ),
    )
    async def funnel(
        self,
        request: Request[Any, Any, Any],
        name: FromPath[str],
        caller: NamedDependency[Principal],
        report_funnel: NamedDependency[ReportFunnel],
        start: From = None,
        end: To = None,
        group_by: FromQuery[str | None] = None,
    ) -> FunnelReportOut:
        settings, where = caller.tenant.settings, attribute_filters(request)
        query = ReportFunnelQuery(caller.tenant.id, name, start, end, settings, where, group_by)
        return FunnelReportOut.of(await report_funnel(query))

    @get(
        "/reports/sales",
        summary="Sales per device, day or attribute, per currency",
        operation_id="reportSales",
        description=rules_of(ReportSales),
        responses=documented(TELEMETRY_REPORT),
    )
    async def sales(
        self,
        caller: NamedDependency[Principal],
        report_sales: NamedDependency[ReportSales],
        start: From = None,
        end: To = None,
        group_by: FromQuery[str] = "device_id",
        currency: FromQuery[str | None] = None,
    ) -> Listing[SalesTotalOut]:
        calendar = caller.tenant.settings.calendar
        query = ReportSalesQuery(caller.tenant.id, start, end, group_by, currency, calendar)
        report = await report_sales(query)
        return Listing([SalesTotalOut.of(t) for t in report.items])
