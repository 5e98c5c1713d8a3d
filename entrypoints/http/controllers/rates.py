from litestar import Controller, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from application.credits.set_rate import SetRate
from application.tenants.authenticate import Principal
from domain.credits import MeterRate, Rate
from domain.tenants import Role
from entrypoints.http.auth import current_principal, requires
from entrypoints.http.schemas import RateBody, RateOut


class RateController(Controller):
    path = "/v1/rates"
    tags = ["credits"]
    guards = [requires(Role.ADMIN)]
    dependencies = {"caller": current_principal}

    @put("/{kind:str}", summary="Set the price of a kind of session")
    async def put_rate(
        self,
        kind: FromPath[str],
        data: JSONBody[RateBody],
        caller: NamedDependency[Principal],
        set_rate: NamedDependency[SetRate],
    ) -> RateOut:
        meters = {m: MeterRate(r.per, r.credits) for m, r in data.meter_rates.items()}
        rate = Rate(kind, data.credits_per_minute, data.rounding, meters)  # type: ignore[arg-type]
        return RateOut.of(await set_rate(caller.tenant.id, rate))
