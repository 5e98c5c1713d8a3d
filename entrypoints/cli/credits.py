"""`sessionmeter credits`: subjects' credits."""

import uuid

import click

from application.credits.get_balance import GetBalance, GetBalanceQuery
from application.credits.grant_credits import GrantCredits, GrantCreditsCommand, Granted
from domain.credits import Balance
from entrypoints.cli.options import tenant_option
from entrypoints.cli.running import run, tenant_named
from entrypoints.container import Container


@click.group()
def credits() -> None:
    """Subjects' credits."""


@credits.command("grant")
@click.argument("subject")
@click.argument("amount", type=int)
@tenant_option(required=True)
@click.option("--reason", default="granted by an operator", show_default=True)
@click.option(
    "--idempotency-key",
    help="Repeat the command with the same key and the grant is made once. [default: new]",
)
@click.pass_context
def grant(
    ctx: click.Context,
    subject: str,
    amount: int,
    tenant_name: str,
    reason: str,
    idempotency_key: str | None,
) -> None:
    """Grant AMOUNT credits to SUBJECT."""
    key = idempotency_key or str(uuid.uuid4())

    async def job(c: Container) -> tuple[Granted, Balance]:
        tenant = await tenant_named(c, tenant_name)
        grant_credits: GrantCredits = c.use_cases.grant_credits()
        granted = await grant_credits(GrantCreditsCommand(tenant.id, subject, amount, reason, key))
        get_balance: GetBalance = c.use_cases.get_balance()
        return granted, await get_balance(GetBalanceQuery(tenant.id, subject))

    granted, balance = run(ctx, job)
    verb = "granted" if granted.created else "already granted"
    click.echo(
        f"{verb} {granted.entry.amount} credits to {subject} (key {key}); balance {balance.balance}"
    )


@credits.command("balance")
@click.argument("subject")
@tenant_option(required=True)
@click.pass_context
def balance(ctx: click.Context, subject: str, tenant_name: str) -> None:
    """Show SUBJECT's balance, granted and consumed credits."""

    async def job(c: Container) -> Balance:
        get_balance: GetBalance = c.use_cases.get_balance()
        tenant = await tenant_named(c, tenant_name)
        return await get_balance(GetBalanceQuery(tenant.id, subject))

    found = run(ctx, job)
    click.echo(
        f"{subject}: balance {found.balance} (granted {found.granted}, consumed {found.consumed})"
    )
