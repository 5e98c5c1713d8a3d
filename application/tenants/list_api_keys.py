"""List a tenant's API keys."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from application.pagination import Page, page_of_whole
from application.tenants.ports import ApiKeyRepository
from domain.tenants import ApiKey

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class ListApiKeysQuery:
    tenant_id: str
    limit: int | None = None
    cursor: str | None = None


class ListApiKeys:
    """Admins list their tenant's keys, oldest first, revoked and expired ones too: id, name,
    role, when each was created, expires, was revoked and was last used (to the minute) — never
    a secret, which is not kept. A page at a time: up to `limit` (default 50, at most 500), and
    a cursor for the next page while there are more."""

    def __init__(self, keys: ApiKeyRepository) -> None:
        self._keys = keys

    async def __call__(self, query: ListApiKeysQuery) -> Page[ApiKey]:
        keys = await self._keys.find(query.tenant_id)
        return page_of_whole(keys, query.limit, query.cursor, _place, arity=2)


def _place(key: ApiKey) -> list[int | str]:
    """When it was created, in microseconds since the epoch (a cursor holds texts and
    integers), then its id."""
    return [(key.created_at - EPOCH) // timedelta(microseconds=1), key.id]
