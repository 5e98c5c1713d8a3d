"""Operators register a LiveKit server's API key for a tenant, so its webhooks are accepted, and
optionally the server's URL, so that reconciliation can ask it who is in its rooms."""

from application.livekit.ports import LiveKitAccounts
from application.tenants.ports import TenantRepository
from domain.errors import InvalidInput, NotFound
from domain.livekit import LiveKitAccount, check_server_url
from domain.text import check_text


class AddLiveKitAccount:
    def __init__(self, tenants: TenantRepository, accounts: LiveKitAccounts) -> None:
        self._tenants = tenants
        self._accounts = accounts

    async def __call__(
        self, tenant_name: str, api_key: str, api_secret: str, url: str | None = None
    ) -> LiveKitAccount:
        """Register the key (or replace its secret). A url replaces the stored one; without a
        url the stored one is kept."""
        tenant = await self._tenants.get_by_name(tenant_name)
        if tenant is None:
            raise NotFound(f"no tenant named {tenant_name}")
        check_text("api_key", api_key, 200)
        check_text("api_secret", api_secret, 500)
        if not api_key or not api_secret:
            raise InvalidInput("api_key", "the key and the secret must not be empty")
        account = LiveKitAccount(api_key, tenant.id, api_secret, check_server_url(url))
        await self._accounts.add(account)
        return account
