"""Errors a device reports (a crash, a printer fault), and how the same fault is recognised on
every device and build: its fingerprint."""

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from domain.clock import as_utc
from domain.errors import InvalidInput
from domain.money import check_amount, check_currency
from domain.session import JSONObject
from domain.text import check_json, check_no_nul, check_text

MAX_ID_LENGTH = 200
MAX_NAME_LENGTH = 200
MAX_MESSAGE_BYTES = 4 * 1024
MAX_STACK_TRACE_BYTES = 64 * 1024
MAX_BREADCRUMBS = 50


class Severity(StrEnum):
    WARNING = "warning"
    ERROR = "error"
    FATAL = "fatal"

    @property
    def rank(self) -> int:
        """Worse is higher: a group's severity is its worst error's."""
        return list(Severity).index(self)


@dataclass(frozen=True)
class Breadcrumb:
    """What the app did just before the error (a tap, a screen, a printer status)."""

    at: datetime
    type: str
    label: str | None = None
    data: JSONObject | None = None


@dataclass(frozen=True)
class Loss:
    amount: Decimal
    currency: str


@dataclass(frozen=True)
class Impact:
    """What the error cost the customer and the operator."""

    session_interrupted: bool = False
    sale_lost: bool = False
    estimated_loss: Loss | None = None
    user_retried: bool = False
    recovered: bool = False


@dataclass(frozen=True)
class ErrorReport:
    id: str
    at: datetime
    device_id: str
    app_version: str
    severity: Severity
    type: str
    message: str
    session_id: str | None = None
    build: str | None = None
    code: str | None = None
    stack_trace: str | None = None
    # Absent: computed from type, code and the stack trace (or message), see fingerprint_of.
    fingerprint: str = ""
    breadcrumbs: tuple[Breadcrumb, ...] = ()
    context: JSONObject | None = None
    device_state: JSONObject | None = None
    impact: Impact | None = None

    def __post_init__(self) -> None:
        for name, limit in (("id", MAX_ID_LENGTH), ("device_id", MAX_ID_LENGTH)):
            check_text(name, getattr(self, name), limit)
        for name in ("app_version", "type", "build", "code"):
            if (value := getattr(self, name)) is not None:
                check_text(name, value, MAX_NAME_LENGTH)
        if self.session_id is not None:
            check_text("session_id", self.session_id, MAX_ID_LENGTH)
        object.__setattr__(self, "at", as_utc("at", self.at))
        try:
            object.__setattr__(self, "severity", Severity(self.severity))
        except ValueError:
            raise InvalidInput("severity", "must be fatal, error or warning") from None
        _check_bytes("message", self.message, MAX_MESSAGE_BYTES)
        if self.stack_trace is not None:
            _check_bytes("stack_trace", self.stack_trace, MAX_STACK_TRACE_BYTES)
        self._check_breadcrumbs()
        for name in ("context", "device_state"):
            if (value := getattr(self, name)) is not None:
                check_json(name, value)
        if self.impact is not None and (loss := self.impact.estimated_loss) is not None:
            amount = check_amount("impact.estimated_loss.amount", loss.amount)
            currency = check_currency("impact.estimated_loss.currency", loss.currency)
            object.__setattr__(self.impact, "estimated_loss", Loss(amount, currency))
        if self.fingerprint:
            check_text("fingerprint", self.fingerprint, MAX_NAME_LENGTH)
        else:
            fingerprint = fingerprint_of(self.type, self.code, self.stack_trace, self.message)
            object.__setattr__(self, "fingerprint", fingerprint)

    def _check_breadcrumbs(self) -> None:
        if len(self.breadcrumbs) > MAX_BREADCRUMBS:
            raise InvalidInput("breadcrumbs", f"at most {MAX_BREADCRUMBS}")
        for i, crumb in enumerate(self.breadcrumbs):
            object.__setattr__(crumb, "at", as_utc(f"breadcrumbs[{i}].at", crumb.at))
            check_text(f"breadcrumbs[{i}].type", crumb.type, MAX_NAME_LENGTH)
            if crumb.label is not None:
                check_text(f"breadcrumbs[{i}].label", crumb.label, MAX_NAME_LENGTH)
            if crumb.data is not None:
                check_json(f"breadcrumbs[{i}].data", crumb.data)

    @property
    def sale_lost(self) -> bool:
        return self.impact is not None and self.impact.sale_lost

    @property
    def loss(self) -> Loss | None:
        return None if self.impact is None else self.impact.estimated_loss


def _check_bytes(field_name: str, value: str, limit: int) -> None:
    if not value or len(value.encode()) > limit:
        raise InvalidInput(field_name, f"must be 1 byte to {limit // 1024} KB")
    check_no_nul(field_name, value)


# What differs between two occurrences of one fault: ids, addresses, line numbers, counts.
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
_ADDRESS = re.compile(r"\b0x[0-9a-f]+\b", re.IGNORECASE)
_HEX_ID = re.compile(r"\b(?=[0-9a-f]*\d)[0-9a-f]{7,}\b", re.IGNORECASE)  # a short git hash: 7
_NUMBER = re.compile(r"\d+")
_SPACE = re.compile(r"\s+")


def normalized(text: str) -> str:
    """A line of a stack trace or a message with what varies between occurrences blanked."""
    text = _UUID.sub("<uuid>", text)
    text = _ADDRESS.sub("<addr>", text)
    text = _HEX_ID.sub("<hex>", text)
    text = _NUMBER.sub("#", text)
    return _SPACE.sub(" ", text).strip()


def fingerprint_of(type: str, code: str | None, stack_trace: str | None, message: str) -> str:
    """The same fault on two devices or two builds gets the same fingerprint: its type and code
    as sent, with its stack frames (or, without a stack trace, its message) normalized."""
    lines = (stack_trace or message).splitlines()
    frames = [line for line in map(normalized, lines) if line]
    key = "\n".join([type, code or "", *frames])
    return hashlib.sha256(key.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class ErrorFilter:
    fingerprint: str | None = None
    device_id: str | None = None
    app_version: str | None = None
    severity: Severity | None = None

    def __post_init__(self) -> None:
        # No stored error holds a NUL, and PostgreSQL fails on one in a comparison.
        for name in ("fingerprint", "device_id", "app_version"):
            if (value := getattr(self, name)) is not None:
                check_no_nul(name, value)


class ErrorGroupBy(StrEnum):
    """What the errors report may be grouped by besides the fingerprint (`group_by`)."""

    DAY = "day"  # a calendar day of the tenant's time zone


@dataclass(frozen=True)
class ErrorGrouping:
    """How the errors report cuts its window: one group per fingerprint over all of it, or, by
    day, one per (calendar day of `time_zone`, fingerprint)."""

    by: ErrorGroupBy | None = None
    time_zone: str = "UTC"  # with DAY: the tenant's, whose calendar days group

    @classmethod
    def parse(cls, text: str | None, time_zone: str = "UTC") -> "ErrorGrouping":
        """The report's `group_by`: absent, or one of ErrorGroupBy."""
        if text is None:
            return cls()
        try:
            return cls(ErrorGroupBy(text), time_zone)
        except ValueError:
            raise InvalidInput("group_by", f"must be {', '.join(ErrorGroupBy)}") from None


PER_FINGERPRINT = ErrorGrouping()


@dataclass(frozen=True)
class ErrorGroup:
    """One fault in a report: every error of one fingerprint in the window (grouped by day:
    in one calendar day of the window)."""

    fingerprint: str
    type: str  # of its latest error, as are code and sample_message
    code: str | None
    sample_message: str
    count: int
    devices: int
    sessions: int
    first_seen: datetime
    last_seen: datetime
    app_versions: dict[str, int]
    severity: Severity  # the worst seen
    sales_lost: int
    estimated_loss: dict[str, Decimal] = field(default_factory=dict)  # per currency
    day: str | None = None  # grouped by day: its label in the time zone (YYYY-MM-DD)


def in_report_order(groups: Iterable[ErrorGroup]) -> list[ErrorGroup]:
    """Oldest day first (a report by day; labels sort as their days do), then the most frequent
    fault first, then by fingerprint."""
    return sorted(groups, key=lambda g: (g.day or "", -g.count, g.fingerprint))
