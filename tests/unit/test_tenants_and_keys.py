"""CreateTenant, CreateApiKey, Authenticate, UpdateSettings and CheckHealth: who may act for
which tenant, with which settings, and whether the service can serve at all."""

import asyncio
from typing import Any

import pytest
from dependency_injector import providers

from adapters.memory.storage import MemoryStorage
from application.health.check_health import CheckHealthQuery
from application.tenants.authenticate import CACHE_TTL, Authenticate
from application.tenants.create_api_key import CreateApiKey, CreateApiKeyCommand
from application.tenants.create_tenant import CreateTenantCommand
from application.tenants.ports import ApiKeyRepository
from application.tenants.update_settings import UpdateSettingsCommand
from domain.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from domain.tenants import KEY_PREFIX, ApiKey, Role, Tenant, hash_secret
from entrypoints.container import Container
from entrypoints.container.use_cases import UseCaseContainer
from tests.fakes import FakeClock, UnreachableStorage

pytestmark = pytest.mark.anyio


@pytest.fixture
def create_key(use_cases: UseCaseContainer) -> CreateApiKey:
    return use_cases.create_api_key()


@pytest.fixture
def authenticate(use_cases: UseCaseContainer) -> Authenticate:
    return use_cases.authenticate()


async def test_a_tenant_name_is_taken_once(
    storage: MemoryStorage, use_cases: UseCaseContainer, tenant: Tenant
) -> None:
    with pytest.raises(Conflict):
        await use_cases.create_tenant()(CreateTenantCommand("acme"))
    assert await storage.tenants.all() == [tenant]


@pytest.mark.parametrize("name", ["", "-acme", "a b", "a" * 65])
async def test_a_tenant_name_is_a_short_plain_name(use_cases: UseCaseContainer, name: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        await use_cases.create_tenant()(CreateTenantCommand(name))
    assert refused.value.field == "name"


async def test_a_new_tenant_starts_with_the_default_settings(tenant: Tenant) -> None:
    assert tenant.settings.idle_timeout_seconds == 300
    assert tenant.settings.max_batch_events == 100


async def test_only_the_hash_of_a_key_is_kept(
    create_key: CreateApiKey, storage: MemoryStorage, tenant: Tenant
) -> None:
    created = await create_key(CreateApiKeyCommand("acme", "ingest"))
    key, secret = created.key, created.secret
    assert secret.startswith(KEY_PREFIX) and secret not in key.secret_hash
    assert await storage.api_keys.get_by_hash(hash_secret(secret)) == key


async def test_a_key_needs_a_known_tenant_and_role(
    create_key: CreateApiKey, tenant: Tenant
) -> None:
    with pytest.raises(NotFound):
        await create_key(CreateApiKeyCommand("nobody", Role.ADMIN))
    with pytest.raises(InvalidInput) as refused:
        await create_key(CreateApiKeyCommand("acme", "owner"))
    assert refused.value.field == "role"


async def test_a_key_acts_for_its_tenant_with_its_role(
    create_key: CreateApiKey, authenticate: Authenticate, tenant: Tenant
) -> None:
    secret = (await create_key(CreateApiKeyCommand("acme", Role.INGEST))).secret
    principal = await authenticate(secret)
    assert (principal.tenant, principal.role) == (tenant, Role.INGEST)


@pytest.mark.parametrize("secret", [None, "", "sm_unknown", KEY_PREFIX])
async def test_a_missing_or_unknown_key_is_unauthorized(
    authenticate: Authenticate, tenant: Tenant, secret: str | None
) -> None:
    with pytest.raises(Unauthorized):
        await authenticate(secret)


@pytest.mark.parametrize(
    ("role", "needed", "allowed"),
    [
        (Role.INGEST, Role.INGEST, True),
        (Role.INGEST, Role.ADMIN, False),
        (Role.ADMIN, Role.ADMIN, True),
        (Role.ADMIN, Role.INGEST, True),  # an admin may do everything in its tenant
    ],
)
async def test_a_role_allows_its_own_work_and_admin_allows_all(
    create_key: CreateApiKey,
    authenticate: Authenticate,
    tenant: Tenant,
    role: Role,
    needed: Role,
    allowed: bool,
) -> None:
    secret = (await create_key(CreateApiKeyCommand("acme", role))).secret
    principal = await authenticate(secret)
    assert role.allows(needed) is allowed
    if allowed:
        assert principal.require(needed) is principal
    else:
        with pytest.raises(Forbidden):
            principal.require(needed)


async def test_a_key_is_remembered_until_the_cache_expires(
    create_key: CreateApiKey,
    authenticate: Authenticate,
    storage: MemoryStorage,
    clock: FakeClock,
    tenant: Tenant,
) -> None:
    secret = (await create_key(CreateApiKeyCommand("acme", Role.INGEST))).secret
    principal = await authenticate(secret)
    storage.api_keys._store.api_keys.clear()  # the key is revoked behind the cache's back

    clock.advance(CACHE_TTL.total_seconds() - 1)
    assert await authenticate(secret) == principal
    clock.advance(1)
    with pytest.raises(Unauthorized):
        await authenticate(secret)


class LooksUpSlowly:
    """Key lookups that, once they have read the key, wait for `go`: what happens meanwhile
    comes after what they read."""

    def __init__(self, keys: ApiKeyRepository, read: asyncio.Event, go: asyncio.Event) -> None:
        self._keys, self._read, self._go = keys, read, go

    async def get_by_hash(self, secret_hash: str) -> ApiKey | None:
        key = await self._keys.get_by_hash(secret_hash)
        self._read.set()
        await self._go.wait()
        return key

    def __getattr__(self, name: str) -> Any:
        return getattr(self._keys, name)


async def test_a_key_revoked_while_a_request_looks_it_up_is_refused_to_the_next(
    create_key: CreateApiKey, storage: MemoryStorage, clock: FakeClock, tenant: Tenant
) -> None:
    """The request under way was let in by what it read; the lookup it made is not remembered
    past the revocation (the server that revoked a key refuses it at once)."""
    created = await create_key(CreateApiKeyCommand("acme", Role.INGEST))
    read, go = asyncio.Event(), asyncio.Event()
    authenticate = Authenticate(LooksUpSlowly(storage.api_keys, read, go), storage.tenants, clock)
    under_way = asyncio.create_task(authenticate(created.secret))
    await asyncio.wait_for(read.wait(), 30)  # a lookup that never gets there fails the test

    await storage.api_keys.revoke(tenant.id, created.key.id, clock.now())  # as RevokeApiKey
    authenticate.forget_key(created.key.secret_hash)
    go.set()

    assert (await under_way).key_id == created.key.id
    with pytest.raises(Unauthorized):
        await authenticate(created.secret)


async def test_a_settings_change_applies_at_once_and_keeps_what_it_does_not_name(
    create_key: CreateApiKey,
    authenticate: Authenticate,
    use_cases: UseCaseContainer,
    tenant: Tenant,
) -> None:
    secret = (await create_key(CreateApiKeyCommand("acme", Role.ADMIN))).secret
    before = (await authenticate(secret)).tenant

    updated = await use_cases.update_settings()(
        UpdateSettingsCommand(before, {"idle_timeout_seconds": 60})
    )

    assert updated.settings.idle_timeout_seconds == 60
    assert updated.settings.max_batch_events == before.settings.max_batch_events
    assert (await authenticate(secret)).tenant.settings.idle_timeout_seconds == 60


async def test_a_settings_change_keeps_a_change_made_since_the_callers_key_was_remembered(
    create_key: CreateApiKey,
    authenticate: Authenticate,
    use_cases: UseCaseContainer,
    tenant: Tenant,
) -> None:
    """Another server process changed one field after this one remembered the tenant with its
    key: a change of another field through this one keeps it."""
    secret = (await create_key(CreateApiKeyCommand("acme", Role.ADMIN))).secret
    remembered = (await authenticate(secret)).tenant
    elsewhere = UpdateSettingsCommand(remembered, {"session_retention_days": 1})
    await use_cases.update_settings()(elsewhere)

    updated = await use_cases.update_settings()(
        UpdateSettingsCommand(remembered, {"personal_attributes": ["email"]})
    )

    assert updated.settings.personal_attributes == ("email",)
    assert updated.settings.session_retention_days == 1


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"idle_timeout_seconds": 9}, "idle_timeout_seconds"),
        ({"max_batch_events": 0}, "max_batch_events"),
        ({"max_batch_events": 1001}, "max_batch_events"),
        ({"overdraft": "maybe"}, "overdraft"),
        ({"min_start_credits": -1}, "min_start_credits"),
    ],
)
async def test_settings_out_of_bounds_are_refused(
    storage: MemoryStorage,
    use_cases: UseCaseContainer,
    tenant: Tenant,
    changes: dict[str, Any],
    field: str,
) -> None:
    with pytest.raises(InvalidInput) as refused:
        await use_cases.update_settings()(UpdateSettingsCommand(tenant, changes))
    assert refused.value.field == field
    assert (await storage.tenants.get(tenant.id)) == tenant


async def test_the_service_is_healthy_when_its_storage_answers(
    container: Container, use_cases: UseCaseContainer
) -> None:
    assert (await use_cases.check_health()(CheckHealthQuery())).storage_answers is True
    container.storage.health.override(providers.Object(UnreachableStorage()))
    assert (await use_cases.check_health()(CheckHealthQuery())).storage_answers is False
