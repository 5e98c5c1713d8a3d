"""Credits: what a session costs, and the ledger that records grants and charges.

A session's charge = rounding(duration minutes x credits_per_minute)
                   + sum over meters of rounding(quantity / per x credits),
computed with exact decimals. The balance of a subject is the sum of its ledger, always.
"""

from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from enum import StrEnum

from domain.errors import InvalidInput
from domain.session import KIND_PATTERN, MAX_ID_LENGTH, Session
from domain.text import check_text
from domain.usage import MAX_DECIMAL_PLACES, METER_NAME, decimal_places

# Bounds that keep every price and balance far inside the signed 64-bit integers the stores hold
# (README, "Limits"). A session lasts less than 1000 years (domain.clock) and each of its meters
# adds up to less than 10^9, so its price is below 10^15 credits: a balance comes near 2^63 only
# after some 9,000 sessions at that price, or 9 million of the largest grants.
MAX_CREDITS_PER_MINUTE = 10**6
MAX_METER_RATES = 32
MAX_METER_CREDITS = 10**6
MAX_CREDITS_PER_UNIT = 10**4  # a meter rate's credits / per
MAX_PER = 10**9
MAX_GRANT = 10**12


class Rounding(StrEnum):
    CEIL = "ceil"
    FLOOR = "floor"
    NEAREST = "nearest"

    def apply(self, amount: Decimal) -> int:
        mode = {"ceil": ROUND_CEILING, "floor": ROUND_FLOOR, "nearest": ROUND_HALF_UP}[self.value]
        return int(amount.to_integral_value(rounding=mode))


@dataclass(frozen=True)
class MeterRate:
    per: Decimal
    credits: int


@dataclass(frozen=True)
class Rate:
    kind: str
    credits_per_minute: int
    rounding: Rounding = Rounding.CEIL
    meter_rates: dict[str, MeterRate] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not KIND_PATTERN.match(self.kind):
            raise InvalidInput("kind", "1-64 characters of a-z 0-9 _ . -")
        try:
            object.__setattr__(self, "rounding", Rounding(self.rounding))
        except ValueError:
            raise InvalidInput("rounding", "must be ceil, floor or nearest") from None
        if not 0 <= self.credits_per_minute <= MAX_CREDITS_PER_MINUTE:
            raise InvalidInput("credits_per_minute", f"must be 0-{MAX_CREDITS_PER_MINUTE}")
        if len(self.meter_rates) > MAX_METER_RATES:
            raise InvalidInput("meter_rates", f"at most {MAX_METER_RATES} meters")
        for meter, rate in self.meter_rates.items():
            if not METER_NAME.match(meter):
                raise InvalidInput(f"meter_rates.{meter}", "is not a meter name")
            _check_meter_rate(f"meter_rates.{meter}", rate)

    def price(self, session: Session) -> int:
        seconds = Decimal(session.duration_seconds or 0)
        total = self.rounding.apply(seconds / 60 * self.credits_per_minute)
        for meter, rate in self.meter_rates.items():
            quantity = Decimal(session.usage.get(meter, 0))
            total += self.rounding.apply(quantity / rate.per * rate.credits)
        return total


def _check_meter_rate(where: str, rate: MeterRate) -> None:
    per = rate.per
    if not per.is_finite() or not 0 < per <= MAX_PER:
        raise InvalidInput(f"{where}.per", f"must be more than 0 and at most {MAX_PER}")
    if decimal_places(per) > MAX_DECIMAL_PLACES:
        raise InvalidInput(f"{where}.per", f"at most {MAX_DECIMAL_PLACES} decimal places")
    if not 0 <= rate.credits <= MAX_METER_CREDITS:
        raise InvalidInput(f"{where}.credits", f"must be 0-{MAX_METER_CREDITS}")
    if rate.credits > per * MAX_CREDITS_PER_UNIT:
        raise InvalidInput(
            f"{where}.credits", f"at most {MAX_CREDITS_PER_UNIT} credits per unit (credits / per)"
        )


class EntryKind(StrEnum):
    GRANT = "grant"
    CHARGE = "charge"
    ADJUSTMENT = "adjustment"


@dataclass(frozen=True)
class LedgerEntry:
    id: str
    tenant_id: str
    subject_id: str
    amount: int  # negative for charges
    kind: EntryKind
    created_at: datetime
    reason: str | None = None
    session_id: str | None = None
    idempotency_key: str | None = None
    expires_at: datetime | None = None
    # A charge's or adjustment's place among its session's settlements (domain.charging): one
    # entry per (session, revision), whatever the store.
    session_revision: int | None = None

    @classmethod
    def grant(
        cls,
        id: str,
        tenant_id: str,
        subject_id: str,
        amount: int,
        reason: str,
        idempotency_key: str,
        now: datetime,
        expires_at: datetime | None = None,
    ) -> "LedgerEntry":
        if not 0 < amount <= MAX_GRANT:
            raise InvalidInput("amount", f"must be 1-{MAX_GRANT}")
        check_text("subject_id", subject_id, MAX_ID_LENGTH)
        check_text("reason", reason, 1000)
        check_text("idempotency_key", idempotency_key, 200)
        return cls(
            id,
            tenant_id,
            subject_id,
            amount,
            EntryKind.GRANT,
            now,
            reason,
            None,
            idempotency_key,
            expires_at,
        )

    def same_grant_as(self, other: "LedgerEntry") -> bool:
        """Whether `other` repeats this grant (a replay) rather than reusing its key."""
        return (self.subject_id, self.amount, self.reason, self.expires_at) == (
            other.subject_id,
            other.amount,
            other.reason,
            other.expires_at,
        )


@dataclass(frozen=True)
class Balance:
    subject_id: str
    granted: int
    consumed: int

    @property
    def balance(self) -> int:
        return self.granted - self.consumed


@dataclass(frozen=True)
class Alert:
    """Something an admin should look at, e.g. a charge that took a balance below zero."""

    id: str
    tenant_id: str
    kind: str
    subject_id: str
    session_id: str | None
    detail: str
    created_at: datetime
