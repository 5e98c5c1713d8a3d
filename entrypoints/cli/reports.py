"""`sessionmeter report`: reports."""

import click

from application.reports.report_watch_time import ReportWatchTime, ReportWatchTimeQuery
from domain.reports import WatchTime
from entrypoints.cli.options import tenant_option
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
