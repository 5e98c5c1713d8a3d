"""LiveKit accounts and their servers' URLs: registered by operators, set by admins, carried by
tenant exports (old exports without a URL included)."""

import json

import pytest

from adapters.memory.storage import MemoryStorage
from application.livekit.add_livekit_account import AddLiveKitAccount, AddLiveKitAccountCommand
from application.livekit.set_livekit_url import SetLiveKitUrl, SetLiveKitUrlCommand
from application.transfer.tenant_export_format import from_line, to_line
from domain.errors import InvalidInput, NotFound
from domain.livekit import LiveKitAccount
from domain.tenants import Tenant
from entrypoints.container.use_cases import UseCaseContainer
from tests.unit.conftest import TenantMaker

pytestmark = pytest.mark.anyio

NOT_URLS = [
    "",
    "lk.example.com",
    "wss://lk.example.com",
    "ftp://lk.example.com",
    "https://",
    "https://lk.example.com:port",
    "https://lk.example.com/a path",
    "https://lk.example.com/\x00",
    "https://lk.example.com/" + "a" * 480,
]


@pytest.fixture
def add(use_cases: UseCaseContainer) -> AddLiveKitAccount:
    return use_cases.add_livekit_account()


@pytest.fixture
def set_url(use_cases: UseCaseContainer) -> SetLiveKitUrl:
    return use_cases.set_livekit_url()


@pytest.mark.parametrize("url", ["https://lk.example.com", "http://10.0.0.7:7880/livekit"])
async def test_an_operator_registers_a_key_with_its_servers_url(
    add: AddLiveKitAccount, storage: MemoryStorage, tenant: Tenant, url: str
) -> None:
    await add(AddLiveKitAccountCommand("acme", "APIkey", "secret", url))
    assert await storage.livekit_accounts.of_tenant(tenant.id) == [
        LiveKitAccount("APIkey", tenant.id, "secret", url)
    ]


@pytest.mark.parametrize("url", NOT_URLS)
async def test_a_url_that_is_not_an_http_servers_is_refused_where_it_is_set(
    add: AddLiveKitAccount,
    set_url: SetLiveKitUrl,
    storage: MemoryStorage,
    tenant: Tenant,
    url: str,
) -> None:
    with pytest.raises(InvalidInput) as added:
        await add(AddLiveKitAccountCommand("acme", "APIkey", "secret", url))
    await add(AddLiveKitAccountCommand("acme", "APIkey", "secret"))
    with pytest.raises(InvalidInput) as set_:
        await set_url(SetLiveKitUrlCommand(tenant.id, "APIkey", url))

    assert added.value.field == set_.value.field == "url"
    assert (await storage.livekit_accounts.get("APIkey")) == LiveKitAccount(
        "APIkey", tenant.id, "secret"
    )


async def test_an_admin_sets_and_removes_the_url_of_its_own_keys_only(
    add: AddLiveKitAccount, set_url: SetLiveKitUrl, tenant: Tenant, make_tenant: TenantMaker
) -> None:
    globex = await make_tenant("globex")
    await add(AddLiveKitAccountCommand("acme", "APIkey", "secret"))

    set_ = SetLiveKitUrlCommand(tenant.id, "APIkey", "https://lk.example.com")
    assert (await set_url(set_)).url == "https://lk.example.com"
    assert (await set_url(SetLiveKitUrlCommand(tenant.id, "APIkey", None))).url is None
    with pytest.raises(NotFound):
        await set_url(SetLiveKitUrlCommand(globex.id, "APIkey", "https://lk.example.com"))


def test_an_export_carries_the_url_and_an_older_one_without_it_still_imports() -> None:
    account = LiveKitAccount("APIkey", "tenant-1", "secret", "https://lk.example.com")
    line = to_line(account)
    older = json.dumps({k: v for k, v in json.loads(line).items() if k != "url"})

    assert json.loads(line)["url"] == "https://lk.example.com"
    assert from_line(line, 2) == account
    assert from_line(older, 2) == LiveKitAccount("APIkey", "tenant-1", "secret")
