from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody

from application.authenticate import Principal
from application.get_balance import GetBalance
from application.grant_credits import GrantCredits, GrantCreditsCommand
from application.list_ledger import ListLedger
from domain.tenants import Role
from entrypoints.http.auth import current_principal, requires
from entrypoints.http.schemas import CreditsOut, GrantBody, LedgerEntryOut, LedgerPage


class AccountController(Controller):
    """A subject's account: its credits (and, next, its plan and trial)."""

    path = "/v1/accounts/{subject_id:str}"
    tags = ["credits"]
    guards = [requires(Role.ADMIN)]
    dependencies = {"caller": current_principal}

    @post("/credits/grants", summary="Grant credits (idempotent by key)", status_code=201)
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

    @get("/credits", summary="Balance, granted and consumed credits")
    async def credits(
        self,
        subject_id: FromPath[str],
        caller: NamedDependency[Principal],
        get_balance: NamedDependency[GetBalance],
    ) -> CreditsOut:
        return CreditsOut.of(await get_balance(caller.tenant.id, subject_id))

    @get("/credits/ledger", summary="Grants and charges, oldest first")
    async def ledger(
        self,
        subject_id: FromPath[str],
        caller: NamedDependency[Principal],
        list_ledger: NamedDependency[ListLedger],
        limit: FromQuery[int | None] = None,
        cursor: FromQuery[str | None] = None,
    ) -> LedgerPage:
        return LedgerPage.of(await list_ledger(caller.tenant.id, subject_id, limit, cursor))
