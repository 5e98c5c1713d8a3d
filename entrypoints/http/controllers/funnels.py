"""Funnels: the stages a tenant defines for sessions of one kind."""

from litestar import Controller, delete, get, put
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody

from application.funnels.delete_funnel import DeleteFunnel, DeleteFunnelCommand
from application.funnels.get_funnel import GetFunnel, GetFunnelQuery
from application.funnels.list_funnels import ListFunnels, ListFunnelsQuery
from application.funnels.set_funnel import SetFunnel, SetFunnelCommand
from application.tenants.authenticate import Principal
from domain.tenants import Role
from entrypoints.http.auth import AUTH, NEEDS_ADMIN, needs
from entrypoints.http.errors import documented
from entrypoints.http.openapi import rules_of
from entrypoints.http.schemas.common import Page
from entrypoints.http.schemas.funnels import FunnelBody, FunnelOut

NO_FUNNEL = "no such funnel in this tenant"


class FunnelsController(Controller):
    path = "/funnels"
    tags = ["funnels"]
    opt = needs(Role.ADMIN)

    @put(
        "/{name:str}",
        summary="Define a funnel: the stages of one kind of session",
        operation_id="setFunnel",
        description=rules_of(SetFunnel),
    )
    async def put_funnel(
        self,
        name: FromPath[str],
        data: JSONBody[FunnelBody],
        caller: NamedDependency[Principal],
        set_funnel: NamedDependency[SetFunnel],
    ) -> FunnelOut:
        funnel = await set_funnel(SetFunnelCommand(caller.tenant.id, data.funnel(name)))
        return FunnelOut.of(funnel)

    @get(
        "/",
        summary="Read back the tenant's funnels",
        operation_id="listFunnels",
        description=rules_of(ListFunnels),
        responses=documented({401: AUTH, 403: NEEDS_ADMIN}),
    )
    async def list_funnels(
        self,
        caller: NamedDependency[Principal],
        list_funnels: NamedDependency[ListFunnels],
        limit: FromQuery[int | None] = None,
        cursor: FromQuery[str | None] = None,
    ) -> Page[FunnelOut]:
        funnels = await list_funnels(ListFunnelsQuery(caller.tenant.id, limit, cursor))
        return Page.of(funnels, FunnelOut.of)

    @get(
        "/{name:str}",
        summary="Read back one funnel",
        operation_id="getFunnel",
        description=rules_of(GetFunnel),
        responses=documented({401: AUTH, 403: NEEDS_ADMIN, 404: NO_FUNNEL}),
    )
    async def get_funnel(
        self,
        name: FromPath[str],
        caller: NamedDependency[Principal],
        get_funnel: NamedDependency[GetFunnel],
    ) -> FunnelOut:
        return FunnelOut.of(await get_funnel(GetFunnelQuery(caller.tenant.id, name)))

    @delete(
        "/{name:str}",
        summary="Remove a funnel",
        operation_id="deleteFunnel",
        description=rules_of(DeleteFunnel),
        status_code=200,
        responses=documented({401: AUTH, 403: NEEDS_ADMIN, 404: NO_FUNNEL}),
    )
    async def delete_funnel(
        self,
        name: FromPath[str],
        caller: NamedDependency[Principal],
        delete_funnel: NamedDependency[DeleteFunnel],
    ) -> FunnelOut:
        return FunnelOut.of(await delete_funnel(DeleteFunnelCommand(caller.tenant.id, name)))
