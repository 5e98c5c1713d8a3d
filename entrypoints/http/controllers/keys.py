"""API keys: issue one (its secret shown once), list them, revoke one."""

from litestar import Controller, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody

from application.tenants.authenticate import Principal
from application.tenants.create_api_key import CreateApiKey, CreateApiKeyCommand
from application.tenants.list_api_keys import ListApiKeys, ListApiKeysQuery
from application.tenants.revoke_api_key import RevokeApiKey, RevokeApiKeyCommand
from domain.tenants import Role
from entrypoints.http.auth import AUTH, NEEDS_ADMIN, needs
from entrypoints.http.errors import documented
from entrypoints.http.openapi import rules_of
from entrypoints.http.schemas.common import Page
from entrypoints.http.schemas.keys import IssuedKeyOut, KeyBody, KeyOut


class KeysController(Controller):
    path = "/keys"
    tags = ["keys"]
    opt = needs(Role.ADMIN)

    @post(
        "/",
        summary="Issue an API key (its secret is in this answer only)",
        operation_id="createApiKey",
        description=rules_of(CreateApiKey),
        status_code=201,
        responses=documented({401: AUTH, 403: NEEDS_ADMIN, 422: "a field is invalid or unknown"}),
    )
    async def create(
        self,
        data: JSONBody[KeyBody],
        caller: NamedDependency[Principal],
        create_api_key: NamedDependency[CreateApiKey],
    ) -> IssuedKeyOut:
        command = CreateApiKeyCommand(
            caller.tenant.name, data.role, data.name, data.expires_at, data.resources
        )
        created = await create_api_key(command)
        return IssuedKeyOut.issued(created.key, created.secret)

    @get(
        "/",
        summary="The tenant's API keys (never their secrets)",
        operation_id="listApiKeys",
        description=rules_of(ListApiKeys),
        responses=documented({401: AUTH, 403: NEEDS_ADMIN}),
    )
    async def list(
        self,
        caller: NamedDependency[Principal],
        list_api_keys: NamedDependency[ListApiKeys],
        limit: FromQuery[int | None] = None,
        cursor: FromQuery[str | None] = None,
    ) -> Page[KeyOut]:
        keys = await list_api_keys(ListApiKeysQuery(caller.tenant.id, limit, cursor))
        return Page.of(keys, KeyOut.of)

    @delete(
        "/{key_id:str}",
        summary="Revoke an API key",
        operation_id="revokeApiKey",
        description=rules_of(RevokeApiKey),
        status_code=200,
        responses=documented({401: AUTH, 403: NEEDS_ADMIN, 404: "no such key in this tenant"}),
    )
    async def revoke(
        self,
        key_id: FromPath[str],
        caller: NamedDependency[Principal],
        revoke_api_key: NamedDependency[RevokeApiKey],
    ) -> KeyOut:
        return KeyOut.of(await revoke_api_key(RevokeApiKeyCommand(caller.tenant.id, key_id)))
