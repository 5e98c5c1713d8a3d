"""An admin sets, or removes, the URL of the LiveKit server behind one of the tenant's API keys:
with it, reconciliation asks that server who is in the rooms of open stays."""

from application.livekit.ports import LiveKitAccounts
from domain.livekit import LiveKitAccount, check_server_url


class SetLiveKitUrl:
    def __init__(self, accounts: LiveKitAccounts) -> None:
        self._accounts = accounts

    async def __call__(self, tenant_id: str, api_key: str, url: str | None) -> LiveKitAccount:
        """NotFound if the key is not the tenant's; InvalidInput for a URL that is not http(s)."""
        return await self._accounts.set_url(tenant_id, api_key, check_server_url(url))
