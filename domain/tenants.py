"""Tenants (the teams whose data is kept apart) and the API keys that act for them."""

import hashlib
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from domain.errors import InvalidInput

TENANT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
KEY_PREFIX = "sm_"


class Role(StrEnum):
    INGEST = "ingest"  # sessions, events, exits, reads of its tenant's sessions
    ADMIN = "admin"  # everything in its tenant

    def allows(self, needed: "Role") -> bool:
        return self is Role.ADMIN or self is needed


class Overdraft(StrEnum):
    SOFT = "soft"  # a charge may take the balance below zero; an alert is recorded
    HARD = "hard"  # a rated session may not start below min_start_credits


RETENTION_SETTINGS = (
    "snapshot_retention_days",
    "event_retention_days",
    "hourly_rollup_retention_days",
    "daily_rollup_retention_days",
)


@dataclass(frozen=True)
class TenantSettings:
    idle_timeout_seconds: int = 300
    max_batch_events: int = 100
    overdraft: Overdraft = Overdraft.SOFT
    min_start_credits: int = 0
    upgrade_url: str | None = None
    # How long what grows fastest is kept; sessions and the ledger are kept for good.
    snapshot_retention_days: int = 7
    event_retention_days: int = 90
    hourly_rollup_retention_days: int = 90
    daily_rollup_retention_days: int | None = None  # None: for good

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "overdraft", Overdraft(self.overdraft))
        except ValueError:
            raise InvalidInput("overdraft", "must be soft or hard") from None
        if not 10 <= self.idle_timeout_seconds <= 7 * 24 * 3600:
            raise InvalidInput("idle_timeout_seconds", "must be 10 seconds to 7 days")
        if not 1 <= self.max_batch_events <= 1000:
            raise InvalidInput("max_batch_events", "must be 1-1000")
        if self.min_start_credits < 0:
            raise InvalidInput("min_start_credits", "must be 0 or more")
        for name in RETENTION_SETTINGS:
            days = getattr(self, name)
            if days is not None and not 1 <= days <= 36500:
                raise InvalidInput(name, "must be 1-36500 days")


@dataclass(frozen=True)
class Tenant:
    id: str
    name: str
    created_at: datetime
    settings: TenantSettings = field(default_factory=TenantSettings)

    def __post_init__(self) -> None:
        if not TENANT_NAME.match(self.name):
            raise InvalidInput(
                "name", "1-64 characters of A-Z a-z 0-9 _ . -, starting alphanumeric"
            )


@dataclass(frozen=True)
class ApiKey:
    """A stored key: only the hash of its secret is kept."""

    id: str
    tenant_id: str
    role: Role
    secret_hash: str
    created_at: datetime

    @classmethod
    def issue(cls, id: str, tenant_id: str, role: Role, now: datetime) -> tuple["ApiKey", str]:
        """A new key and its secret, which is shown once and never stored."""
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        return cls(id, tenant_id, role, hash_secret(secret), now), secret


def hash_secret(secret: str) -> str:
    # Secrets are 256 random bits, so a fast hash is enough: nothing to brute-force.
    return hashlib.sha256(secret.encode()).hexdigest()
