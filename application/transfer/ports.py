"""The ports of the transfer area: what its use cases need from storage and the outside world.

Whatever must be race-free is one method here; its docstring is the contract that the storage
contract suite (tests/contract) proves on every adapter with concurrent callers.
"""

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from application.funnels.ports import FunnelDay
from domain.credits import Alert, LedgerEntry, Rate
from domain.error_reports import ErrorReport
from domain.events import Event
from domain.funnels import Funnel
from domain.livekit import LiveKitAccount, TrackReport
from domain.performance import Metric
from domain.plans import Plan, Registration, Subscription, SubscriptionSet
from domain.refusals import RefusedStart
from domain.rollups import Rollup
from domain.sales import Sale
from domain.session import Session
from domain.snapshots import Snapshot
from domain.tenants import ApiKey, Tenant


@dataclass(frozen=True)
class ArchivedFunnelDay:
    """A funnel's day as an export carries it: under its funnel's name, as FunnelDays keeps it."""

    funnel: str
    day: FunnelDay


@dataclass(frozen=True)
class ArchivedTrack:
    """A LiveKit track of a stay as an export carries it: what webhooks said of it, and whether
    its time is in its session's usage already (TrackLog)."""

    session_id: str
    report: TrackReport
    counted: bool


@dataclass(frozen=True)
class ArchivedErasure:
    """A subject's erasure under way (Erasure.pseudonym_for): the store the tenant moves to
    finishes it (ApplyRetention), under the same pseudonym, over what the file holds of the
    subject still."""

    subject_id: str
    pseudonym: str
    started_at: datetime


@dataclass(frozen=True)
class ArchivedFinishedRoom:
    """A LiveKit room whose `room_finished` was handled (FinishedRooms): a stay of it stored
    later ends with it."""

    room_sid: str
    finished_at: datetime


@dataclass(frozen=True)
class ArchivedWebhook:
    """A LiveKit webhook handled (WebhookLog): its redelivery is recorded once."""

    id: str
    received_at: datetime


@dataclass(frozen=True)
class ArchivedRefusals:
    """A day's refused starts of one subject, kind and reason (RefusedStarts), counted."""

    refused: RefusedStart
    count: int


# Everything that makes up a tenant's state, as an export carries it.
Record = (
    Tenant
    | ApiKey
    | Rate
    | Plan
    | Subscription
    | SubscriptionSet
    | Registration
    | Funnel
    | Session
    | Event
    | LedgerEntry
    | Alert
    | LiveKitAccount
    | Snapshot
    | ErrorReport
    | Metric
    | Sale
    | Rollup
    | ArchivedFunnelDay
    | ArchivedTrack
    | ArchivedErasure
    | ArchivedFinishedRoom
    | ArchivedWebhook
    | ArchivedRefusals
)


class TenantArchive(Protocol):
    def export(self, tenant_id: str) -> AsyncIterator[Record]:
        """The tenant's whole state, streamed (never loaded whole), in an order an import can
        apply as it reads: the tenant, keys, rates, plans, subscriptions and their history,
        registrations, funnels, the erasures under way (before the sessions: no session under
        such a pseudonym is charged until its erasure is done), sessions, events, the
        sessions' LiveKit tracks (or, from MongoDB, a few sessions, their events and tracks,
        then the next few), the rooms LiveKit said finished, the handled webhook ids, ledger
        entries, alerts, LiveKit keys (after the tracks, rooms and webhook ids: the store takes
        none of the tenant's webhooks until those are in), snapshots, errors, metrics, sales
        (with their settlement), the refused starts, then the hourly and daily rollups and the
        funnels' days (what reports read of days whose raw data retention has deleted)."""
        ...

    async def restore(self, tenant_id: str, records: Sequence[Record]) -> int:
        """Store the records that are not there yet, by their natural keys, exactly as given:
        a session keeps its status, usage and charge; an event or a track adds nothing to its
        session (a track of a session that is not there is not kept); a day's refused starts
        already there keep their count; a rollup's bucket or a funnel's day already stored
        stays as it is (this store's own rollup runs made it from the data it holds). Returns
        how many were new. A tenant whose name another tenant holds is a Conflict."""
        ...
