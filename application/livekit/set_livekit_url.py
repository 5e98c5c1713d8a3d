"""Set or remove the URL of the LiveKit server behind one of a tenant's API keys."""

from dataclasses import dataclass

from application.livekit.ports import LiveKitAccounts
from domain.livekit import LiveKitAccount, check_server_url


@dataclass(frozen=True)
class SetLiveKitUrlCommand:
    tenant_id: str
    api_key: str
    url: str | None


class SetLiveKitUrl:
    """An admin sets, or removes, the URL of the LiveKit server behind one of the tenant's API
    keys: with it, reconciliation asks that server who is in the rooms of open stays, and so
    the reaper closes the tenant's LiveKit stays that go idle like any other kind's (without
    one, only webhooks end them; see ReapStaleSessions).

    NotFound if the key is not the tenant's; InvalidInput for a URL that is not http(s)."""

    def __init__(self, accounts: LiveKitAccounts) -> None:
        self._accounts = accounts

    async def __call__(self, command: SetLiveKitUrlCommand) -> LiveKitAccount:
        url = check_server_url(command.url)
        return await self._accounts.set_url(command.tenant_id, command.api_key, url)
