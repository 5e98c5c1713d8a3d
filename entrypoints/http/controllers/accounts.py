from litestar import Controller, Response, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody

from application.credits.get_balance import GetBalance
from application.credits.grant_credits import GrantCredits, GrantCreditsCommand
from application.credits.list_ledger import ListLedger
from application.tenants.authenticate import Principal
from application.trials.get_limits import GetLimits
from application.trials.get_trial_status import GetTrialStatus
from application.trials.register_resource import RegisterResource
from application.trials.subscribe import Subscribe
from domain.plans import Subscription
from domain.tenants import Role
from entrypoints.http.auth import current_principal, requires
from entrypoints.http.schemas import (
    CreditsOut,
    GrantBody,
    LedgerEntryOut,
    LedgerPage,
    LimitsOut,
    ResourceBody,
    ResourceOut,
    SubscriptionBody,
    SubscriptionOut,
    TrialStatusOut,
)


class AccountController(Controller):
    """A subject's account: its credits, its plan, its resources and trials."""

    path = "/v1/accounts/{subject_id:str}"
    tags = ["accounts"]
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

    @put("/subscription", summary="Put the subject on a plan until a date")
    async def subscribe(
        self,
        subject_id: FromPath[str],
        data: JSONBody[SubscriptionBody],
        caller: NamedDependency[Principal],
        subscribe: NamedDependency[Subscribe],
    ) -> SubscriptionOut:
        subscription = Subscription(subject_id, data.plan_id, data.ends_at, data.starts_at)
        return SubscriptionOut.of(await subscribe(caller.tenant.id, subscription))

    @get("/limits", summary="What the subject's plan allows now")
    async def limits(
        self,
        subject_id: FromPath[str],
        caller: NamedDependency[Principal],
        get_limits: NamedDependency[GetLimits],
    ) -> LimitsOut:
        return LimitsOut.of(await get_limits(caller.tenant.id, subject_id))

    @post("/resources", summary="Register a resource (within the monthly quota)", status_code=201)
    async def register(
        self,
        subject_id: FromPath[str],
        data: JSONBody[ResourceBody],
        caller: NamedDependency[Principal],
        register_resource: NamedDependency[RegisterResource],
    ) -> Response[ResourceOut]:
        created = await register_resource(caller.tenant.id, subject_id, data.resource_id, data.kind)
        body = ResourceOut(subject_id, data.resource_id, data.kind)
        return Response(body, status_code=201 if created else 200)

    @get("/resources/{resource_id:str}/trial-status", summary="Where the subject stands on a trial")
    async def trial_status(
        self,
        subject_id: FromPath[str],
        resource_id: FromPath[str],
        caller: NamedDependency[Principal],
        get_trial_status: NamedDependency[GetTrialStatus],
    ) -> TrialStatusOut:
        return TrialStatusOut.of(await get_trial_status(caller.tenant.id, subject_id, resource_id))
