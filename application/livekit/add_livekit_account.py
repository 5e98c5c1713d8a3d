"""Register a tenant's LiveKit API key, and optionally its server's URL."""

from dataclasses import dataclass

from application.livekit.ports import LiveKitAccounts
from application.tenants.ports import TenantRepository
from domain.errors import InvalidInput, NotFound
from domain.livekit import LiveKitAccount, check_server_url
from domain.text import check_text


@dataclass(frozen=True)
class AddLiveKitAccountCommand:
    tenant_name: str
    api_key: str
    api_secret: str
    url: str | None = None


class AddLiveKitAccount:
    """Operators register a LiveKit server's API key for a tenant, so its webhooks are accepted,
    and optionally the server's URL, so that reconciliation can ask it who is in its rooms.

    Registering a key again replaces its secret. A url replaces the stored one; without a url
    the stored one is kept. NotFound if there is no tenant of that name; Conflict if the key
    belongs to another tenant; InvalidInput for an empty key or secret, or a URL that is not
    http(s)."""

    def __init__(self, tenants: TenantRepository, accounts: LiveKitAccounts) -> None:
        self._tenants = tenants
        self._accounts = accounts

    async def __call__(self, command: AddLiveKitAccountCommand) -> LiveKitAccount:
        tenant = await self._tenants.get_by_name(command.tenant_name)
        if tenant is None:
            raise NotFound(f"no tenant named {command.tenant_name}")
        check_text("api_key", command.api_key, 200)
        check_text("api_secret", command.api_secret, 500)
        if not command.api_key or not command.api_secret:
            raise InvalidInput("api_key", "the key and the secret must not be empty")
        account = LiveKitAccount(
            command.api_key, tenant.id, command.api_secret, check_server_url(command.url)
        )
        await self._accounts.add(account)
        return account
