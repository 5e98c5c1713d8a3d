"""Tenants (the teams whose data is kept apart) and the API keys that act for them."""

import hashlib
import re
import secrets
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from domain.calendar import Calendar, zone
from domain.clock import as_utc
from domain.errors import Forbidden, InvalidInput
from domain.session import KIND_PATTERN, MAX_ID_LENGTH
from domain.text import check_text

TENANT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")  # \Z: $ takes a final \n
KEY_PREFIX = "sm_"
MAX_SETTING_CREDITS = 10**15
MAX_KEY_NAME = 200
MAX_KEY_RESOURCES = 100


class Role(StrEnum):
    """What a key may do; each role may do all that the roles before it may."""

    # Public-grade, held by a browser, kiosk or device: writes sessions, events, exits and
    # telemetry, and reads only a session it names — never anything that moves money or limits.
    INGEST = "ingest"
    APP = "app"  # a product's own back end: all that ingest does, reads, resources, settlements
    ADMIN = "admin"  # everything in its tenant

    def allows(self, needed: "Role") -> bool:
        order = list(Role)
        return order.index(self) >= order.index(needed)


@dataclass(frozen=True)
class Access:
    """What a caller's key may write: its role and, for a device's key, its scope."""

    role: Role = Role.APP
    # The resources (or kiosk devices) a scoped ingest key writes for; None: the whole tenant.
    resources: frozenset[str] | None = None

    def check_writes(self, kind: str, billed: frozenset[str]) -> None:
        """A browser's or device's claim about who it is cannot be trusted, so an ingest key may
        not write what moves money or limits: sessions of a kind with a rate or named by a plan's
        limits (their starts, heartbeats, exits and meters come from the product's back end)."""
        if self.role is Role.INGEST and kind in billed:
            raise Forbidden(
                f"sessions of kind {kind} are billed or limited: "
                "start them from your back end (an app key)"
            )

    def check_scope(self, resource_id: str) -> None:
        """A scoped key writes only for its own resources or devices: a leaked kiosk key cannot
        touch another kiosk's sessions or telemetry."""
        if self.resources is not None and resource_id not in self.resources:
            raise Forbidden(f"this key is scoped to other resources than {resource_id}")


class Overdraft(StrEnum):
    SOFT = "soft"  # a charge may take the balance below zero; an alert is recorded
    HARD = "hard"  # a rated session may not start below min_start_credits


RETENTION_SETTINGS = (
    "snapshot_retention_days",
    "event_retention_days",
    "hourly_rollup_retention_days",
    "daily_rollup_retention_days",
    "error_retention_days",
    "performance_retention_days",
    "session_retention_days",
)
MAX_PERSONAL_ATTRIBUTES = 100
MAX_DIMENSIONS = 8
ATTRIBUTE_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,64}\Z")  # \Z: $ takes a final \n


MAX_IDLE_TIMEOUT = 7 * 24 * 3600
MAX_RATE_LIMIT = 1_000_000
# Every kind but LiveKit stays: their server sends no heartbeats, so unless reconciliation keeps
# them alive (their account has a server URL) only their webhooks end them.
NEVER_IDLE_BY_DEFAULT = frozenset({"livekit"})


@dataclass(frozen=True)
class TenantSettings:
    idle_timeout_seconds: int = 300
    # Per kind: seconds without a sign of life before the reaper closes a session, or None for
    # never; a kind not listed uses idle_timeout_seconds.
    idle_timeouts: dict[str, int | None] = field(default_factory=dict)
    # Any session still active this long after its start is closed (None: no cap).
    max_session_seconds: int | None = 86_400
    # How long after an end (or an instant) late data still counts: events, corrections of a
    # reaper's end, a client's own exit.
    late_data_window_seconds: int = 604_800
    # A running session's charge estimate warns when it leaves less than this (0: off).
    low_balance_credits: int = 0
    max_batch_events: int = 100
    overdraft: Overdraft = Overdraft.SOFT
    min_start_credits: int = 0
    upgrade_url: str | None = None
    # Requests per second each ingest or app key may send (None: no limit); admin keys have none.
    rate_limit_per_second: int | None = 200
    # How long what grows fastest is kept; sessions, sales and the ledger are kept for good.
    snapshot_retention_days: int = 7
    event_retention_days: int = 90
    hourly_rollup_retention_days: int = 90
    daily_rollup_retention_days: int | None = None  # None: for good
    # Kiosk telemetry; sales are kept for good.
    error_retention_days: int = 365
    performance_retention_days: int = 90
    # Ended sessions older than this go with their events, unless a sale or a charge names them
    # (the books keep them) or a plan's limit counts them; None: for good.
    session_retention_days: int | None = None
    # Attributes that name or trace a person besides ip, user_agent and referrer (domain.erasure):
    # erasing a subject removes them from its sessions and sales.
    personal_attributes: tuple[str, ...] = ()
    # IANA name: day, week and month buckets, monthly quotas and report windows follow its
    # calendar (domain.calendar).
    time_zone: str = "UTC"
    # Attribute keys that reports may group by, and rollups pre-aggregate by.
    dimensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "overdraft", Overdraft(self.overdraft))
        except ValueError:
            raise InvalidInput("overdraft", "must be soft or hard") from None
        if not 10 <= self.idle_timeout_seconds <= MAX_IDLE_TIMEOUT:
            raise InvalidInput("idle_timeout_seconds", "must be 10 seconds to 7 days")
        self._check_idle_timeouts()
        if self.max_session_seconds is not None and not (
            60 <= self.max_session_seconds <= 366 * 24 * 3600
        ):
            raise InvalidInput("max_session_seconds", "must be 60 seconds to 366 days, or null")
        if not 60 <= self.late_data_window_seconds <= 30 * 24 * 3600:
            raise InvalidInput("late_data_window_seconds", "must be 60 seconds to 30 days")
        if not 0 <= self.low_balance_credits <= MAX_SETTING_CREDITS:
            raise InvalidInput("low_balance_credits", f"must be 0-{MAX_SETTING_CREDITS}")
        if not 1 <= self.max_batch_events <= 1000:
            raise InvalidInput("max_batch_events", "must be 1-1000")
        if self.rate_limit_per_second is not None and not (
            1 <= self.rate_limit_per_second <= MAX_RATE_LIMIT
        ):
            raise InvalidInput("rate_limit_per_second", f"must be 1-{MAX_RATE_LIMIT}, or null")
        if not 0 <= self.min_start_credits <= MAX_SETTING_CREDITS:
            raise InvalidInput("min_start_credits", f"must be 0-{MAX_SETTING_CREDITS}")
        for name in RETENTION_SETTINGS:
            days = getattr(self, name)
            if days is not None and not 1 <= days <= 36500:
                raise InvalidInput(name, "must be 1-36500 days")
        self._check_attribute_names("personal_attributes", MAX_PERSONAL_ATTRIBUTES)
        self._check_attribute_names("dimensions", MAX_DIMENSIONS)
        if not isinstance(self.time_zone, str):
            raise InvalidInput("time_zone", "must be an IANA time zone name")
        zone(self.time_zone)  # an unknown zone is refused here, not in a report

    def _check_idle_timeouts(self) -> None:
        if not isinstance(self.idle_timeouts, dict):
            raise InvalidInput("idle_timeouts", "must be an object of kind: seconds or null")
        if len(self.idle_timeouts) > 100:
            raise InvalidInput("idle_timeouts", "at most 100 kinds")
        for kind, seconds in self.idle_timeouts.items():
            if not isinstance(kind, str) or not KIND_PATTERN.match(kind):
                raise InvalidInput(f"idle_timeouts.{kind}", "is not a kind (a-z 0-9 _ . -)")
            if seconds is None:
                continue
            if isinstance(seconds, bool) or not isinstance(seconds, int):
                raise InvalidInput(f"idle_timeouts.{kind}", "must be whole seconds or null")
            if not 10 <= seconds <= MAX_IDLE_TIMEOUT:
                raise InvalidInput(f"idle_timeouts.{kind}", "must be 10 seconds to 7 days")

    def _check_attribute_names(self, setting: str, most: int) -> None:
        names = getattr(self, setting)
        if not isinstance(names, list | tuple):
            raise InvalidInput(setting, "must be a list of attribute names")
        if len(names) > most:
            raise InvalidInput(setting, f"at most {most} names")
        for name in names:
            if not isinstance(name, str) or not ATTRIBUTE_NAME.match(name):
                raise InvalidInput(
                    setting, f"{name!r} is not an attribute name (A-Z a-z 0-9 _ . : -)"
                )
        # Stores give back a JSON list: a tuple, so settings read back equal those stored.
        object.__setattr__(self, setting, tuple(dict.fromkeys(names)))

    def dimension(self, field: str, key: str) -> str:
        """`key` if it is one of the declared dimensions; else InvalidInput naming `field`."""
        if key not in self.dimensions:
            allowed = ", ".join(self.dimensions) or "none are declared (settings.dimensions)"
            raise InvalidInput(field, f"must be a declared dimension: {allowed}")
        return key

    def chosen(self, where: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
        """`attributes.<key>=<value>` filters, by key, each key a declared dimension (else
        InvalidInput naming `attributes.<key>`)."""
        return tuple(sorted((self.dimension(f"attributes.{k}", k), v) for k, v in where.items()))

    @property
    def calendar(self) -> Calendar:
        return Calendar(self.time_zone)

    @property
    def rollup_cut(self) -> str:
        """What cuts usage into rollups, as one text: days by the time zone, groups by the
        dimensions. Rollups made under another cut are made again."""
        return " ".join((self.time_zone, *self.dimensions))

    def idle_timeout(self, kind: str, reconciled: bool = False) -> timedelta | None:
        """How long a session of `kind` may go without a sign of life (None: for ever).
        `reconciled`: the tenant's LiveKit stays are kept alive by reconciliation."""
        if kind in self.idle_timeouts:
            seconds = self.idle_timeouts[kind]
        elif kind in NEVER_IDLE_BY_DEFAULT and not reconciled:
            seconds = None
        else:
            seconds = self.idle_timeout_seconds
        return None if seconds is None else timedelta(seconds=seconds)

    @property
    def max_session(self) -> timedelta | None:
        seconds = self.max_session_seconds
        return None if seconds is None else timedelta(seconds=seconds)

    @property
    def late_data_window(self) -> timedelta:
        return timedelta(seconds=self.late_data_window_seconds)

    @property
    def sessions_kept(self) -> timedelta | None:
        """How long ended sessions stay (None: for good): their retention, and at least the
        late-data window, while a late event of theirs may still come."""
        if self.session_retention_days is None:
            return None
        return max(timedelta(days=self.session_retention_days), self.late_data_window)

    @property
    def hourly_rollups_kept(self) -> timedelta:
        """How long hourly rollups stay: their retention, and at least the late-data window and
        a day, so that a day late data changes is rebuilt from its stored hours."""
        return max(
            timedelta(days=self.hourly_rollup_retention_days),
            self.late_data_window + timedelta(days=1),
        )


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
    name: str | None = None  # what it is for: "kiosk 17", "billing back end"
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None  # to the minute
    resources: frozenset[str] | None = None  # a device's key: Access.resources

    @classmethod
    def issue(
        cls,
        id: str,
        tenant_id: str,
        role: Role,
        now: datetime,
        name: str | None = None,
        expires_at: datetime | None = None,
        resources: Collection[str] | None = None,
    ) -> tuple["ApiKey", str]:
        """A new key and its secret, which is shown once and never stored."""
        if name is not None:
            check_text("name", name, MAX_KEY_NAME)
        if expires_at is not None and as_utc("expires_at", expires_at) <= now:
            raise InvalidInput("expires_at", "must lie in the future")
        scope = None if resources is None else _scope(role, resources)
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        key = cls(id, tenant_id, role, hash_secret(secret), now, name, expires_at, resources=scope)
        return key, secret

    @property
    def access(self) -> Access:
        return Access(self.role, self.resources)

    def refusal(self, now: datetime) -> str | None:
        """Why the key no longer opens anything, or None."""
        if self.revoked_at is not None:
            return "the API key was revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "the API key has expired"
        return None

    def used_at(self, now: datetime) -> datetime | None:
        """The minute to record as its last use, if its record is a minute behind (None)."""
        minute = now.replace(second=0, microsecond=0)
        return None if self.last_used_at is not None and self.last_used_at >= minute else minute


def _scope(role: Role, resources: Collection[str]) -> frozenset[str]:
    # App and admin keys read the whole tenant, so a scope on them would promise what it cannot.
    if role is not Role.INGEST:
        raise InvalidInput("resources", "only ingest keys are scoped: leave it out or null")
    if isinstance(resources, str) or not 1 <= len(resources) <= MAX_KEY_RESOURCES:
        raise InvalidInput("resources", f"must list 1-{MAX_KEY_RESOURCES} resource or device ids")
    for index, resource_id in enumerate(resources):
        check_text(f"resources[{index}]", resource_id, MAX_ID_LENGTH)
    return frozenset(resources)


def hash_secret(secret: str) -> str:
    # Secrets are 256 random bits, so a fast hash is enough: nothing to brute-force.
    return hashlib.sha256(secret.encode()).hexdigest()
