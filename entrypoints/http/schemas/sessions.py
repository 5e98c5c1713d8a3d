"""The bodies of sessions: start, heartbeat, exit, and a session as its client sees it."""

from datetime import datetime
from typing import Annotated, Self

import msgspec

from application.credits.running_cost import SessionView
from domain.charging import Estimate
from domain.session import Charge, Session
from domain.tenants import TenantSettings
from entrypoints.http.schemas.common import JSONObject, Meters, MetersOut, Timestamp, meters_out

# Integers as every store holds them (MongoDB's are signed 64-bit).
Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
AttributeValue = str | Int64 | float | bool


class StartSessionBody(msgspec.Struct, kw_only=True):
    kind: str
    resource_id: str
    id: str | None = None
    subject_id: str | None = None
    client_key: str | None = None
    started_at: Timestamp | None = None
    attributes: dict[str, AttributeValue] = {}


class HeartbeatBody(msgspec.Struct, kw_only=True):
    at: Timestamp | None = None


class ExitBody(msgspec.Struct, kw_only=True):
    at: Timestamp | None = None
    status: str = "completed"
    reason: str | None = None
    summary: JSONObject | None = None
    usage: Meters = {}


class ChargeOut(msgspec.Struct):
    credits: int
    balance_after: int
    warning: str | None

    @classmethod
    def of(cls, charge: Charge | Estimate | None) -> "ChargeOut | None":
        return None if charge is None else cls(charge.credits, charge.balance_after, charge.warning)


class SessionOut(msgspec.Struct):
    id: str
    kind: str
    resource_id: str
    subject_id: str | None
    client_key: str | None
    status: str
    started_at: datetime
    last_seen_at: datetime
    ended_at: datetime | None
    duration_seconds: float | None
    attributes: dict[str, AttributeValue]
    usage: MetersOut
    event_count: int
    event_gaps: list[tuple[int, int]]
    summary: JSONObject | None
    exit_reason: str | None
    charge: ChargeOut | None
    charge_state: str
    # While an active session of a rated kind runs: its charge if it ended now. warning:
    # credits_low (below the tenant's low_balance_credits) or credits_exhausted (below zero).
    charge_estimate: ChargeOut | None = None

    @classmethod
    def of(cls, s: Session, estimate: Estimate | None = None) -> Self:
        return cls(
            id=s.id,
            kind=s.kind,
            resource_id=s.resource_id,
            subject_id=s.subject_id,
            client_key=s.client_key,
            status=s.status.value,
            started_at=s.started_at,
            last_seen_at=s.last_seen_at,
            ended_at=s.ended_at,
            duration_seconds=s.duration_seconds,
            attributes=s.attributes,
            usage=meters_out(s.usage),
            event_count=s.event_count,
            event_gaps=s.event_gaps,
            summary=s.summary,
            exit_reason=s.exit_reason,
            charge=ChargeOut.of(s.charge),
            charge_estimate=ChargeOut.of(estimate),
            charge_state=s.charge_state.value,
        )

    @classmethod
    def of_view(cls, view: SessionView) -> "SessionOut":
        return cls.of(view.session, view.charge_estimate)


class StartedSessionOut(SessionOut):
    """A session as its start answers it: with how long it may stay silent."""

    # Seconds without a sign of life (heartbeat, event) before the reaper ends it; null: never
    # for idleness. The shortest it can be for the kind (a LiveKit stay's depends on
    # reconciliation), so a client that heartbeats within it is never cut off; the tracker
    # heartbeats at a third of it.
    idle_timeout_seconds: int | None = None

    @classmethod
    def of_start(cls, s: Session, settings: TenantSettings) -> "StartedSessionOut":
        timeout = settings.idle_timeout(s.kind, reconciled=True)
        seconds = None if timeout is None else int(timeout.total_seconds())
        return msgspec.structs.replace(cls.of(s), idle_timeout_seconds=seconds)
