"""The bodies of a tenant's settings."""

from typing import Annotated, Any

import msgspec

from domain.tenants import TenantSettings


def setting(low: int, high: int) -> msgspec.Meta:
    """The bounds of an integer setting, as the domain checks them, in the schema too."""
    return msgspec.Meta(ge=low, le=high)


CreditsSetting = Annotated[int, setting(0, 10**15)]
RetentionDays = Annotated[int, setting(1, 36500)]


class SettingsBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Only the fields sent change (UNSET tells "not sent" from null)."""

    overdraft: str | msgspec.UnsetType = msgspec.UNSET
    min_start_credits: CreditsSetting | msgspec.UnsetType = msgspec.UNSET
    idle_timeout_seconds: Annotated[int, setting(10, 604_800)] | msgspec.UnsetType = msgspec.UNSET
    # Per kind: seconds (10 s to 7 days) or null (never closed for idleness). The values are
    # checked by the domain, which names the kind of a bad one (msgspec would not).
    idle_timeouts: (
        Annotated[
            dict[str, Any],
            msgspec.Meta(
                description="kind: seconds (10 to 604800) or null (never idle-reaped)",
                examples=[{"livekit": 600, "recording": None}],
            ),
        ]
        | msgspec.UnsetType
    ) = msgspec.UNSET
    # null: no cap
    max_session_seconds: Annotated[int, setting(60, 366 * 86_400)] | msgspec.UnsetType | None = (
        msgspec.UNSET
    )
    late_data_window_seconds: Annotated[int, setting(60, 30 * 86_400)] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    low_balance_credits: CreditsSetting | msgspec.UnsetType = msgspec.UNSET
    max_batch_events: Annotated[int, setting(1, 1000)] | msgspec.UnsetType = msgspec.UNSET
    upgrade_url: str | msgspec.UnsetType | None = msgspec.UNSET
    # per ingest or app key and server process; null: no limit (admin keys have none)
    rate_limit_per_second: Annotated[int, setting(1, 1_000_000)] | msgspec.UnsetType | None = (
        msgspec.UNSET
    )
    snapshot_retention_days: RetentionDays | msgspec.UnsetType = msgspec.UNSET
    event_retention_days: RetentionDays | msgspec.UnsetType = msgspec.UNSET
    hourly_rollup_retention_days: RetentionDays | msgspec.UnsetType = msgspec.UNSET
    # null keeps daily rollups for good (the default)
    daily_rollup_retention_days: RetentionDays | msgspec.UnsetType | None = msgspec.UNSET
    error_retention_days: RetentionDays | msgspec.UnsetType = msgspec.UNSET
    performance_retention_days: RetentionDays | msgspec.UnsetType = msgspec.UNSET
    # null keeps ended sessions for good (the default)
    session_retention_days: RetentionDays | msgspec.UnsetType | None = msgspec.UNSET
    # The names are checked by the domain, which says which one is bad.
    personal_attributes: (
        Annotated[
            list[Any],
            msgspec.Meta(
                max_length=100,
                description="attribute names erasure removes besides ip, user_agent, referrer",
                examples=[["email", "phone"]],
            ),
        ]
        | msgspec.UnsetType
    ) = msgspec.UNSET
    time_zone: (
        Annotated[
            str,
            msgspec.Meta(
                max_length=64,
                description="IANA name: the calendar of day, week and month buckets",
                examples=["Asia/Seoul"],
            ),
        ]
        | msgspec.UnsetType
    ) = msgspec.UNSET
    dimensions: (
        Annotated[
            list[Any],
            msgspec.Meta(
                max_length=8,
                description="attribute keys reports may group by",
                examples=[["store_id", "group_id", "country"]],
            ),
        ]
        | msgspec.UnsetType
    ) = msgspec.UNSET

    def changes(self) -> dict[str, Any]:
        return {
            name: value
            for name in self.__struct_fields__
            if (value := getattr(self, name)) is not msgspec.UNSET
        }


class SettingsOut(msgspec.Struct):
    overdraft: str
    min_start_credits: int
    idle_timeout_seconds: int
    idle_timeouts: dict[str, int | None]
    max_session_seconds: int | None
    late_data_window_seconds: int
    low_balance_credits: int
    max_batch_events: int
    upgrade_url: str | None
    rate_limit_per_second: int | None
    snapshot_retention_days: int
    event_retention_days: int
    hourly_rollup_retention_days: int
    daily_rollup_retention_days: int | None
    error_retention_days: int
    performance_retention_days: int
    session_retention_days: int | None
    personal_attributes: list[str]
    time_zone: str
    dimensions: list[str]

    @classmethod
    def of(cls, s: TenantSettings) -> "SettingsOut":
        return cls(
            s.overdraft.value,
            s.min_start_credits,
            s.idle_timeout_seconds,
            s.idle_timeouts,
            s.max_session_seconds,
            s.late_data_window_seconds,
            s.low_balance_credits,
            s.max_batch_events,
            s.upgrade_url,
            s.rate_limit_per_second,
            s.snapshot_retention_days,
            s.event_retention_days,
            s.hourly_rollup_retention_days,
            s.daily_rollup_retention_days,
            s.error_retention_days,
            s.performance_retention_days,
            s.session_retention_days,
            list(s.personal_attributes),
            s.time_zone,
            list(s.dimensions),
        )
