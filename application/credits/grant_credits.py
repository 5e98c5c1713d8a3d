"""Grant credits to a subject, once per idempotency key."""

import uuid
from dataclasses import dataclass
from datetime import datetime

from application.credits.ports import CreditLedger
from application.ports import Clock
from domain.clock import as_utc
from domain.credits import LedgerEntry
from domain.errors import Conflict


@dataclass(frozen=True)
class GrantCreditsCommand:
    tenant_id: str
    subject_id: str
    amount: int
    reason: str
    idempotency_key: str
    expires_at: datetime | None = None


@dataclass(frozen=True)
class Granted:
    entry: LedgerEntry
    created: bool  # False: a replay of an earlier grant with this key


class GrantCredits:
    """Grant credits to a subject (1 to 10^12 at a time), once per idempotency key: the same key
    again with the same grant (subject, amount, reason, expiry) is a replay that records nothing
    and returns the grant first made; the same key with a different grant is a conflict. An
    `expires_at` (with an offset) is recorded with the grant, but nothing expires yet: the
    balance counts every grant."""

    def __init__(self, ledger: CreditLedger, clock: Clock) -> None:
        self._ledger = ledger
        self._clock = clock

    async def __call__(self, command: GrantCreditsCommand) -> Granted:
        expires_at = (
            None if command.expires_at is None else as_utc("expires_at", command.expires_at)
        )
        entry = LedgerEntry.grant(
            str(uuid.uuid4()),
            command.tenant_id,
            command.subject_id,
            command.amount,
            command.reason,
            command.idempotency_key,
            self._clock.now(),
            expires_at,
        )
        stored, created = await self._ledger.grant(entry)
        if not created and not stored.same_grant_as(entry):
            raise Conflict(f"idempotency key {command.idempotency_key} was used for another grant")
        return Granted(stored, created)
