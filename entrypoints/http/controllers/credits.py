"""Credits: rates, grants, balances, the ledger and alerts."""

from litestar import Controller, Response, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody

from application.credits.get_balance import GetBalance, GetBalanceQuery
from application.credits.grant_credits import GrantCredits, GrantCreditsCommand
from application.credits.list_alerts import ListAlerts, ListAlertsQuery
from application.credits.list_ledger import ListLedger, ListLedgerQuery
from application.credits.set_rate import SetRate, SetRateCommand
from application.tenants.authenticate import Principal
from domain.credits import MeterRate, Rate
from domain.tenants import Role
from entrypoints.http.auth import needs
from entrypoints.http.errors import documented
from entrypoints.http.openapi import rules_of
from entrypoints.http.schemas.common import Page
from entrypoints.http.schemas.credits import (
    AlertOut,
    CreditsOut,
    GrantBody,
    LedgerEntryOut,
    RateBody,
    RateOut,
)


class CreditsController(Controller):
    path = "/"
    tags = ["credits"]
    opt = needs(Role.ADMIN)

    @put(
        "/rates/{kind:str}",
        summary="Set the price of a kind of session",
        operation_id="setRate",
        description=rules_of(SetRate),
    )
    async def put_rate(
        self,
        kind: FromPath[str],
        data: JSONBody[RateBody],
        caller: NamedDependency[Principal],
        set_rate: NamedDependency[SetRate],
    ) -> RateOut:
        meters = {m: MeterRate(r.per, r.credits) for m, r in data.meter_rates.items()}
        rate = Rate(kind, data.credits_per_minute, data.rounding, meters)  # type: ignore[arg-type]
        return RateOut.of(await set_rate(SetRateCommand(caller.tenant.id, rate)))

    @post(
        "/accounts/{subject_id:str}/credits/grants",
        summary="Grant credits (idempotent by key)",
        operation_id="grantCredits",
        description=rules_of(GrantCredits),
        status_code=201,
        responses=documented({409: "the idempotency key was used for a grant of other content"}),
    )
    async def grant(
        self,
        subject_id: FromPath[str],
        data: JSONBody[GrantBody],
        caller: NamedDependency[Principal],
        grant_credits: NamedDependency[GrantCredits],
    ) -> Response[LedgerEntryOut]:
        granted = await grant_credits(
            GrantCreditsCommand(
                tenant_id=caller.tenant.id,
                subject_id=subject_id,
                amount=data.amount,
                reason=data.reason,
                idempotency_key=data.idempotency_key,
                expires_at=data.expires_at,
            )
        )
        status = 201 if granted.created else 200
        return Response(LedgerEntryOut.of(granted.entry), status_code=status)

    @get(
        "/accounts/{subject_id:str}/credits",
        summary="Balance, granted and consumed credits",
        operation_id="getBalance",
        opt=needs(Role.APP),
        description=rules_of(GetBalance),
    )
    async def credits(
        self,
        subject_id: FromPath[str],
        caller: NamedDependency[Principal],
        get_balance: NamedDependency[GetBalance],
    ) -> CreditsOut:
        return CreditsOut.of(await get_balance(GetBalanceQuery(caller.tenant.id, subject_id)))

    @get(
        "/accounts/{subject_id:str}/credits/ledger",
        summary="Grants and charges, oldest first",
        operation_id="listLedger",
        opt=needs(Role.APP),
        description=rules_of(ListLedger),
    )
    async def ledger(
        self,
        subject_id: FromPath[str],
        caller: NamedDependency[Principal],
        list_ledger: NamedDependency[ListLedger],
        limit: FromQuery[int | None] = None,
        cursor: FromQuery[str | None] = None,
    ) -> Page[LedgerEntryOut]:
        page = await list_ledger(ListLedgerQuery(caller.tenant.id, subject_id, limit, cursor))
        return Page.of(page, LedgerEntryOut.of)

    @get(
        "/alerts",
        summary="Alerts for admins, newest first",
        operation_id="listAlerts",
        description=rules_of(ListAlerts),
    )
    async def alerts(
        self,
        caller: NamedDependency[Principal],
        list_alerts: NamedDependency[ListAlerts],
        limit: FromQuery[int | None] = None,
        cursor: FromQuery[str | None] = None,
    ) -> Page[AlertOut]:
        alerts = await list_alerts(ListAlertsQuery(caller.tenant.id, limit, cursor))
        return Page.of(alerts, AlertOut.of)
