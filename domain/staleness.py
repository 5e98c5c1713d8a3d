"""Which active sessions the reaper closes: those without a sign of life for their kind's idle
timeout, and those running longer than the tenant's cap, whatever their signs of life."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from domain.session import Session
from domain.tenants import NEVER_IDLE_BY_DEFAULT, TenantSettings


@dataclass(frozen=True)
class Staleness:
    """Cutoffs at one instant: a session is stale when it was last seen before the cutoff of its
    kind (`by_kind`, else `default`; None: never idle) or started before `started_before`."""

    default: datetime | None
    by_kind: dict[str, datetime | None] = field(default_factory=dict)
    started_before: datetime | None = None

    @classmethod
    def of(cls, settings: TenantSettings, now: datetime, reconciled: bool) -> "Staleness":
        """The tenant's cutoffs now; `reconciled`: its LiveKit stays are kept alive by
        reconciliation (so they time out like any other kind)."""

        def cutoff(kind: str) -> datetime | None:
            timeout = settings.idle_timeout(kind, reconciled)
            return None if timeout is None else now - timeout

        default = now - timedelta(seconds=settings.idle_timeout_seconds)
        special = set(settings.idle_timeouts) | NEVER_IDLE_BY_DEFAULT
        max_session = settings.max_session
        return cls(
            default,
            {kind: cutoff(kind) for kind in sorted(special) if cutoff(kind) != default},
            None if max_session is None else now - max_session,
        )

    def is_stale(self, session: Session) -> bool:
        if not session.is_active:
            return False
        if self.started_before is not None and session.started_at < self.started_before:
            return True
        cutoff = self.by_kind.get(session.kind, self.default)
        return cutoff is not None and session.last_seen_at < cutoff
