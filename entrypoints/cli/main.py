"""`sessionmeter`: serve the API, migrate storage, create tenants and keys, reap stale sessions,
move a tenant between stores.

Configuration options have environment variables (shown in --help); options win over them.
Each command group is a module of this package; this one gathers them under the root group.
"""

from importlib.metadata import version
from typing import Any

import click

from entrypoints.cli.credits import credits
from entrypoints.cli.db import db
from entrypoints.cli.keys import keys
from entrypoints.cli.livekit import livekit
from entrypoints.cli.output import output_failed
from entrypoints.cli.reports import report
from entrypoints.cli.retention import retention
from entrypoints.cli.rollups import rollup
from entrypoints.cli.serve import serve
from entrypoints.cli.sessions import sessions
from entrypoints.cli.snapshots import snapshots
from entrypoints.cli.tenants import tenants
from entrypoints.cli.transfer import export_tenant, import_tenant
from entrypoints.settings import DEFAULT_STORAGE_URL


class Commands(click.Group):
    """The root group: a command's answer that cannot be written to standard output (its
    reader went away, its disk is full) stops it quietly or in one line, not in a traceback.
    Errors of the storage never get here: `running.run` turns them into one line itself."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OSError as error:
            output_failed(ctx, error)


@click.group(
    cls=Commands,
    commands=[
        serve,
        db,
        tenants,
        keys,
        sessions,
        credits,
        report,
        export_tenant,
        import_tenant,
        livekit,
        snapshots,
        rollup,
        retention,
    ],
)
@click.version_option(version("sessionmeter"), prog_name="sessionmeter")
@click.option(
    "--storage-url",
    envvar="SESSIONMETER_STORAGE_URL",
    default=DEFAULT_STORAGE_URL,
    show_default=True,
    show_envvar=True,
    help="sqlite:///path.db, postgresql://user@host/db, mongodb://host/db or memory://",
)
@click.pass_context
def cli(ctx: click.Context, storage_url: str) -> None:
    """Meter sessions: record entry and exit, accumulate usage, report."""
    ctx.obj = {"storage_url": storage_url}
