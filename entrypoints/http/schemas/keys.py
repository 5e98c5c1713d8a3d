"""The bodies of API keys: a key asked for, a key issued (its secret once), keys listed."""

from datetime import datetime

import msgspec

from domain.tenants import ApiKey, Role
from entrypoints.http.schemas.common import Timestamp


class KeyBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    role: Role
    name: str | None = None
    expires_at: Timestamp | None = None  # null: until revoked
    resources: list[str] | None = None  # an ingest key for these resources or devices only


class KeyOut(msgspec.Struct):
    id: str
    name: str | None
    role: Role
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None  # to the minute
    resources: list[str] | None  # null: the whole tenant

    @classmethod
    def of(cls, k: ApiKey) -> "KeyOut":
        return cls(*_shown(k))


class IssuedKeyOut(KeyOut):
    secret: str  # shown this once: only its hash is kept

    @classmethod
    def issued(cls, k: ApiKey, secret: str) -> "IssuedKeyOut":
        return cls(*_shown(k), secret)


Shown = tuple[
    str,
    str | None,
    Role,
    datetime,
    datetime | None,
    datetime | None,
    datetime | None,
    list[str] | None,
]


def _shown(k: ApiKey) -> Shown:
    resources = None if k.resources is None else sorted(k.resources)
    return k.id, k.name, k.role, k.created_at, k.expires_at, k.revoked_at, k.last_used_at, resources
