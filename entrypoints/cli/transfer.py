"""`sessionmeter export` and `import`: a tenant moved between stores."""

from typing import IO

import click

from application.transfer.export_tenant import ExportTenantQuery
from application.transfer.import_tenant import ImportCounts, ImportTenantCommand
from entrypoints.cli.options import tenant_option
from entrypoints.cli.output import Passes, Progress, steady_copy, write_out
from entrypoints.cli.running import run
from entrypoints.container import Container


@click.command("export")
@tenant_option(required=True)
@click.pass_context
def export_tenant(ctx: click.Context, tenant_name: str) -> None:
    """Write a tenant's whole state to standard output as JSON Lines (for `import`)."""
    progress = Progress("exported")

    async def job(c: Container) -> None:
        export = await c.use_cases.export_tenant()(ExportTenantQuery(tenant_name))
        async for line in export.lines:
            write_out(line + "\n")
            progress.one()

    run(ctx, job)
    progress.done()


@click.command("import")
@click.argument("source", type=click.File("r", encoding="utf-8"), default="-")
@click.pass_context
def import_tenant(ctx: click.Context, source: IO[str]) -> None:
    """Import a tenant exported from any store (a file, or standard input); repeating it adds
    nothing."""
    with steady_copy(source) as file:
        command = ImportTenantCommand(Passes(file))
        counts: ImportCounts = run(ctx, lambda c: c.use_cases.import_tenant()(command))
    new = ", ".join(f"{n} {kind}" for kind, n in counts.new.items() if n) or "nothing"
    click.echo(f"imported: {new} ({sum(counts.present.values())} already present)")
