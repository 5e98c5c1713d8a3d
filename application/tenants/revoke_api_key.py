"""Revoke an API key."""

from dataclasses import dataclass

from application.ports import Clock
from application.tenants.authenticate import Authenticate
from application.tenants.ports import ApiKeyRepository
from domain.errors import NotFound
from domain.tenants import ApiKey


@dataclass(frozen=True)
class RevokeApiKeyCommand:
    tenant_id: str
    key_id: str


class RevokeApiKey:
    """Admins revoke a key (a leaked one, a kiosk retired): from then on it is `unauthorized`,
    at once on this process and within 5 seconds on every other (each remembers a key that
    long). Revoking it again is a replay that keeps the first revocation's time; a key the
    tenant does not have is `not_found`."""

    def __init__(self, keys: ApiKeyRepository, authenticate: Authenticate, clock: Clock) -> None:
        self._keys = keys
        self._authenticate = authenticate
        self._clock = clock

    async def __call__(self, command: RevokeApiKeyCommand) -> ApiKey:
        revoked = await self._keys.revoke(command.tenant_id, command.key_id, self._clock.now())
        if revoked is None:
            raise NotFound(f"no API key {command.key_id} in this tenant")
        self._authenticate.forget_key(revoked.secret_hash)
        return revoked
