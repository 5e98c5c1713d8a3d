from litestar import Controller, get, put
from litestar.di import NamedDependency
from litestar.params import JSONBody

from application.tenants.authenticate import Principal
from application.tenants.update_settings import UpdateSettings
from domain.tenants import Role
from entrypoints.http.auth import current_principal, requires
from entrypoints.http.schemas import SettingsBody, SettingsOut


class SettingsController(Controller):
    path = "/v1/settings"
    tags = ["settings"]
    guards = [requires(Role.ADMIN)]
    dependencies = {"caller": current_principal}

    @get("/", summary="The tenant's settings")
    async def read(self, caller: NamedDependency[Principal]) -> SettingsOut:
        return SettingsOut.of(caller.tenant.settings)

    @put("/", summary="Change the tenant's settings (fields not sent keep their values)")
    async def change(
        self,
        data: JSONBody[SettingsBody],
        caller: NamedDependency[Principal],
        update_settings: NamedDependency[UpdateSettings],
    ) -> SettingsOut:
        tenant = await update_settings(caller.tenant, data.changes())
        return SettingsOut.of(tenant.settings)
