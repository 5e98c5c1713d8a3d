"""The bodies of credits: rates, grants, the ledger, balances and alerts."""

from datetime import datetime
from decimal import Decimal
from typing import Annotated

import msgspec

from domain.credits import (
    MAX_CREDITS_PER_MINUTE,
    MAX_CREDITS_PER_UNIT,
    MAX_GRANT,
    MAX_METER_CREDITS,
    MAX_METER_RATES,
    MAX_PER,
    Alert,
    Balance,
    LedgerEntry,
    Rate,
)
from entrypoints.http.schemas.common import Timestamp


# Bounds keep every price and balance inside 64 bits (domain.credits). The fields of a meter's
# rate are checked by the domain, which names the meter; the schema only describes them.
class MeterRateBody(msgspec.Struct, forbid_unknown_fields=True):
    per: Annotated[
        Decimal,
        msgspec.Meta(
            description=f"Units priced together: more than 0, at most {MAX_PER}, at most 9 "
            "decimal places"
        ),
    ]
    credits: Annotated[
        int,
        msgspec.Meta(
            description=f"Credits per `per` units: 0-{MAX_METER_CREDITS}, and at most "
            f"{MAX_CREDITS_PER_UNIT} per unit"
        ),
    ]


class RateBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    credits_per_minute: Annotated[int, msgspec.Meta(ge=0, le=MAX_CREDITS_PER_MINUTE)]
    rounding: str = "ceil"
    meter_rates: Annotated[dict[str, MeterRateBody], msgspec.Meta(max_length=MAX_METER_RATES)] = {}


class RateOut(msgspec.Struct):
    kind: str
    credits_per_minute: int
    rounding: str
    meter_rates: dict[str, MeterRateBody]

    @classmethod
    def of(cls, rate: Rate) -> "RateOut":
        meters = {m: MeterRateBody(r.per, r.credits) for m, r in rate.meter_rates.items()}
        return cls(rate.kind, rate.credits_per_minute, rate.rounding.value, meters)


class GrantBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    amount: Annotated[int, msgspec.Meta(ge=1, le=MAX_GRANT)]
    reason: str
    idempotency_key: str
    expires_at: Timestamp | None = None


class LedgerEntryOut(msgspec.Struct):
    id: str
    amount: int
    kind: str
    session_id: str | None
    reason: str | None
    created_at: datetime
    expires_at: datetime | None

    @classmethod
    def of(cls, e: LedgerEntry) -> "LedgerEntryOut":
        return cls(e.id, e.amount, e.kind.value, e.session_id, e.reason, e.created_at, e.expires_at)


class CreditsOut(msgspec.Struct):
    subject_id: str
    balance: int
    granted: int
    consumed: int

    @classmethod
    def of(cls, b: Balance) -> "CreditsOut":
        return cls(b.subject_id, b.balance, b.granted, b.consumed)


class AlertOut(msgspec.Struct):
    id: str
    kind: str
    subject_id: str
    session_id: str | None
    detail: str
    created_at: datetime

    @classmethod
    def of(cls, a: Alert) -> "AlertOut":
        return cls(a.id, a.kind, a.subject_id, a.session_id, a.detail, a.created_at)
