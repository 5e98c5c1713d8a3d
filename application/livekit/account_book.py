"""The LiveKit accounts, remembered briefly by API key: every webhook asks for its signer's."""

from application.livekit.ports import LiveKitAccounts
from application.ports import Clock
from application.remembered import Remembered
from domain.livekit import LiveKitAccount


class LiveKitAccountBook(LiveKitAccounts):
    """LiveKitAccounts whose `get` is remembered per API key (application.remembered.TTL), as
    API keys are (Authenticate). An account changed through this book is forgotten at once.

    Changed through another process (the CLI registers keys), it still counts at once where it
    matters: a key not registered is not remembered, so one registered later counts at its
    first webhook; and `stored` reads past the memory, so that a signature that fails a
    remembered secret is checked against the stored one (a secret rotated elsewhere). What
    stays late: an old secret is still accepted for up to the TTL after it was replaced
    elsewhere, as a revoked API key is."""

    def __init__(self, accounts: LiveKitAccounts, clock: Clock) -> None:
        self._accounts = accounts
        self._known: Remembered[LiveKitAccount | None] = Remembered(clock)

    async def add(self, account: LiveKitAccount) -> None:
        # Forgotten even when the write failed: one that timed out may still have happened.
        try:
            await self._accounts.add(account)
        finally:
            self._known.forget(account.api_key)

    async def get(self, api_key: str) -> LiveKitAccount | None:
        # None is not remembered: keys a LiveKit server sends that nobody registered would pile
        # up, and one registered elsewhere later would wait for the TTL.
        return await self._known.of(
            api_key, lambda: self._accounts.get(api_key), remember_none=False
        )

    async def stored(self, api_key: str) -> LiveKitAccount | None:
        """The account as stored now, remembered from here on."""
        self._known.forget(api_key)
        return await self.get(api_key)

    async def of_tenant(self, tenant_id: str) -> list[LiveKitAccount]:
        return await self._accounts.of_tenant(tenant_id)

    async def set_url(self, tenant_id: str, api_key: str, url: str | None) -> LiveKitAccount:
        try:
            return await self._accounts.set_url(tenant_id, api_key, url)
        finally:
            self._known.forget(api_key)
