"""The tenant's settings."""

from litestar import Controller, get, put
from litestar.di import NamedDependency
from litestar.params import JSONBody

from application.tenants.authenticate import Principal
from application.tenants.read_settings import ReadSettings, ReadSettingsQuery
from application.tenants.update_settings import UpdateSettings, UpdateSettingsCommand
from domain.tenants import Role
from entrypoints.http.auth import needs
from entrypoints.http.openapi import rules_of
from entrypoints.http.schemas.tenants import SettingsBody, SettingsOut


class SettingsController(Controller):
    path = "/settings"
    tags = ["settings"]
    opt = needs(Role.ADMIN)

    @get(
        "/",
        summary="The tenant's settings",
        operation_id="readSettings",
        description=rules_of(ReadSettings),
    )
    async def read(
        self, caller: NamedDependency[Principal], read_settings: NamedDependency[ReadSettings]
    ) -> SettingsOut:
        return SettingsOut.of(await read_settings(ReadSettingsQuery(caller.tenant)))

    @put(
        "/",
        summary="Change the tenant's settings (fields not sent keep their values)",
        operation_id="updateSettings",
        description=rules_of(UpdateSettings),
    )
    async def change(
        self,
        data: JSONBody[SettingsBody],
        caller: NamedDependency[Principal],
        update_settings: NamedDependency[UpdateSettings],
    ) -> SettingsOut:
        tenant = await update_settings(UpdateSettingsCommand(caller.tenant, data.changes()))
        return SettingsOut.of(tenant.settings)
