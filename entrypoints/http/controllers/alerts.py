from litestar import get
from litestar.di import NamedDependency
from litestar.params import FromQuery

from application.credits.list_alerts import ListAlerts
from application.tenants.authenticate import Principal
from domain.tenants import Role
from entrypoints.http.auth import current_principal, requires
from entrypoints.http.schemas import AlertList, AlertOut


@get(
    "/v1/alerts",
    tags=["credits"],
    summary="Alerts for admins, newest first",
    guards=[requires(Role.ADMIN)],
    dependencies={"caller": current_principal},
)
async def alerts(
    caller: NamedDependency[Principal],
    list_alerts: NamedDependency[ListAlerts],
    limit: FromQuery[int | None] = None,
) -> AlertList:
    return AlertList([AlertOut.of(a) for a in await list_alerts(caller.tenant.id, limit)])
