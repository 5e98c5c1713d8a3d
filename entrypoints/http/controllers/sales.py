"""Sales: a sale in, its settlement moved, a tenant's sales out (the sales report is a report)."""

from typing import Annotated

from litestar import Controller, Response, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from application.sessions.session_ids import canonical_session_id
from application.telemetry.list_sales import ListSales, ListSalesQuery
from application.telemetry.move_settlement import MoveSettlement, MoveSettlementCommand
from application.telemetry.record_sales import RecordSales, RecordSalesCommand
from application.tenants.authenticate import Principal
from domain.sales import SalesFilter, SettlementState
from domain.tenants import Role
from entrypoints.http.auth import AUTH, NEEDS_APP, needs
from entrypoints.http.errors import documented
from entrypoints.http.openapi import rules_of
from entrypoints.http.recorded import ONE, created_or_replayed
from entrypoints.http.schemas.common import From, Page, To
from entrypoints.http.schemas.sales import SaleBody, SaleOut, SettlementBody, a_sale


class SalesController(Controller):
    path = "/sales"
    tags = ["kiosk telemetry"]
    opt = needs(Role.INGEST)

    @post(
        "/",
        summary="Record a sale (or a refund) of a session",
        operation_id="recordSale",
        description=rules_of(RecordSales),
        status_code=201,
        responses=documented(ONE),
    )
    async def record(
        self,
        data: JSONBody[SaleBody],
        caller: NamedDependency[Principal],
        record_sales: NamedDependency[RecordSales],
    ) -> Response[SaleOut]:
        sale = a_sale(data, canonical_session_id(data.session_id, "session_id"))
        recorded = await record_sales(RecordSalesCommand(caller.tenant.id, [sale], caller.access))
        return created_or_replayed(recorded, SaleOut.of)

    @patch(
        "/{sale_id:str}/settlement",
        summary="Move a sale's settlement",
        operation_id="moveSettlement",
        description=rules_of(MoveSettlement),
        opt=needs(Role.APP),
        responses=documented(
            {
                401: AUTH,
                403: NEEDS_APP,
                404: "no such sale in this tenant",
                409: "the move is not allowed from the sale's state (`current_state` says it)",
                422: "a field is invalid",
            }
        ),
    )
    async def move(
        self,
        sale_id: FromPath[str],
        data: JSONBody[SettlementBody],
        caller: NamedDependency[Principal],
        move_settlement: NamedDependency[MoveSettlement],
    ) -> SaleOut:
        command = MoveSettlementCommand(caller.tenant.id, sale_id, data.settlement())
        return SaleOut.of(await move_settlement(command))

    @get(
        "/",
        summary="List sales, newest first",
        operation_id="listSales",
        description=rules_of(ListSales),
        opt=needs(Role.APP),
        responses=documented({401: AUTH, 403: NEEDS_APP, 422: "a filter is invalid"}),
    )
    async def list(
        self,
        caller: NamedDependency[Principal],
        list_sales: NamedDependency[ListSales],
        session_id: FromQuery[str | None] = None,
        device_id: FromQuery[str | None] = None,
        settlement_state: Annotated[SettlementState | None, QueryParameter(name="state")] = None,
        start: From = None,
        end: To = None,
        limit: FromQuery[int | None] = None,
        cursor: FromQuery[str | None] = None,
    ) -> Page[SaleOut]:
        session = session_id and canonical_session_id(session_id, "session_id")
        where = SalesFilter(session, device_id, settlement_state)
        query = ListSalesQuery(caller.tenant.id, where, start, end, limit, cursor)
        return Page.of(await list_sales(query), SaleOut.of)
