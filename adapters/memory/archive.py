from collections.abc import AsyncIterator, Hashable, Iterator, Mapping, Sequence
from datetime import date
from typing import Any, TypeVar

from adapters.memory.sessions import as_read
from adapters.memory.store import MemoryStore
from application.transfer.ports import (
    ArchivedErasure,
    ArchivedFinishedRoom,
    ArchivedFunnelDay,
    ArchivedRefusals,
    ArchivedTrack,
    ArchivedWebhook,
    Record,
    TenantArchive,
)
from domain.credits import Alert, LedgerEntry, Rate
from domain.error_reports import ErrorReport
from domain.errors import Conflict
from domain.events import Event
from domain.funnels import Funnel
from domain.livekit import LiveKitAccount
from domain.performance import Metric
from domain.plans import Plan, Registration, Subscription, SubscriptionSet
from domain.refusals import RefusedStart
from domain.rollups import Rollup
from domain.sales import Sale
from domain.session import Session
from domain.snapshots import Snapshot
from domain.tenants import ApiKey, Tenant


class MemoryTenantArchive(TenantArchive):
    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    async def export(self, tenant_id: str) -> AsyncIterator[Record]:
        # Read whole before the first is given: one snapshot, as the SQL stores' one transaction.
        for record in list(self._records(tenant_id)):
            yield record

    def _records(self, tenant_id: str) -> Iterator[Record]:
        store = self._store
        yield store.tenants[tenant_id]
        for key in store.api_keys.values():
            if key.tenant_id == tenant_id:
                yield key
        # Keyed by (tenant_id, â¦): tuples of different lengths, hence Any.
        parts: tuple[Mapping[Any, Record | list[SubscriptionSet]], ...] = (
            store.rates,
            store.plans,
            store.subscriptions,
            store.subscription_history,
            store.resources,
            store.funnels,
        )
        for part in parts:
            for (tenant, *_), value in sorted(part.items(), key=lambda item: item[0]):
                if tenant == tenant_id:
                    for record in value if isinstance(value, list) else [value]:
                        yield record
        for (tenant, subject_id), (pseudonym, at) in sorted(store.erasures_under_way.items()):
            if tenant == tenant_id:
                yield ArchivedErasure(subject_id, pseudonym, at)
        for (tenant, _), session in sorted(store.sessions.items()):
            if tenant == tenant_id:
                yield as_read(store, session)
        for (tenant, _), events in sorted(store.events.items()):
            if tenant == tenant_id:
                for number in sorted(events):
                    yield events[number]
        # Before the LiveKit keys, as on every store (sqlalchemy.archive.AFTER_SESSIONS).
        for (tenant, session_id, _), (track, counted) in sorted(
            store.tracks.items(), key=lambda item: item[0]
        ):
            if tenant == tenant_id:
                yield ArchivedTrack(session_id, track, counted)
        for (tenant, room_sid), finished_at in sorted(store.finished_rooms.items()):
            if tenant == tenant_id:
                yield ArchivedFinishedRoom(room_sid, finished_at)
        for (tenant, webhook_id), received_at in sorted(store.webhooks.items()):
            if tenant == tenant_id:
                yield ArchivedWebhook(webhook_id, received_at)
        for entries in (store.ledger, store.alerts):
            for entry in entries:
                if entry.tenant_id == tenant_id:
                    yield entry
        for _, account in sorted(store.livekit_accounts.items()):
            if account.tenant_id == tenant_id:
                yield account
        for (tenant, *_), snapshot in sorted(store.snapshots.items()):
            if tenant == tenant_id:
                yield snapshot
        telemetry: tuple[Mapping[tuple[str, str], Record], ...] = (
            store.errors,
            store.metrics,
            store.sales,
        )
        for records in telemetry:
            for (tenant, _), record in sorted(records.items(), key=lambda item: item[0]):
                if tenant == tenant_id:
                    yield record
        refused = store.refused_starts.items()
        for (tenant, start), count in sorted(refused, key=lambda item: _refusal_order(item[0][1])):
            if tenant == tenant_id:
                yield ArchivedRefusals(start, count)
        for (tenant, *_), rollup in sorted(store.rollups.items(), key=lambda item: item[0]):
            if tenant == tenant_id:
                yield rollup
        for (tenant, funnel, _), day in sorted(store.funnel_days.items(), key=lambda i: i[0]):
            if tenant == tenant_id:
                yield ArchivedFunnelDay(funnel, day)

    async def restore(self, tenant_id: str, records: Sequence[Record]) -> int:
        return sum([self._restore(tenant_id, record) for record in records])

    def _restore(self, tenant_id: str, record: Record) -> bool:
        store = self._store
        match record:
            case Tenant():
                if any(t.name == record.name and t.id != record.id for t in store.tenants.values()):
                    raise Conflict(f"a tenant named {record.name} exists")
                return _put_new(store.tenants, record.id, record)
            case ApiKey():
                return _put_new(store.api_keys, record.secret_hash, record)
            case Rate():
                return _put_new(store.rates, (tenant_id, record.kind), record)
            case Plan():
                return _put_new(store.plans, (tenant_id, record.id), record)
            case Subscription():
                return _put_new(store.subscriptions, (tenant_id, record.subject_id), record)
            case SubscriptionSet():
                subject = (tenant_id, record.subscription.subject_id)
                history = store.subscription_history.setdefault(subject, [])
                if any(e.number == record.number for e in history):
                    return False
                history.append(record)
                history.sort(key=lambda e: e.number)
                return True
            case Registration():
                key = (tenant_id, record.subject_id, record.resource_id)
                return _put_new(store.resources, key, record)
            case Funnel():
                return _put_new(store.funnels, (tenant_id, record.name), record)
            case Session():
                return _put_new(store.sessions, (tenant_id, record.id), record.copy())
            case Event():
                events = store.events.setdefault((tenant_id, record.session_id), {})
                return _put_new(events, record.sequence_no, record)
            case LedgerEntry():
                # Unique as the other stores' indexes make it: by id, idempotency key, and
                # (session, revision): one entry per settlement of a session.
                if any(_same_entry(e, record) for e in store.ledger):
                    return False
                store.ledger.append(record)
                return True
            case Alert():
                return _append_new(store.alerts, record)
            case LiveKitAccount():
                return _put_new(store.livekit_accounts, record.api_key, record)
            case Snapshot():
                return _put_new(store.snapshots, (tenant_id, record.source, record.at), record)
            case ErrorReport():
                return _put_new(store.errors, (tenant_id, record.id), record)
            case Metric():
                return _put_new(store.metrics, (tenant_id, record.id), record)
            case Sale():
                return _put_new(store.sales, (tenant_id, record.id), record)
            case Rollup():
                return _put_new(store.rollups, (tenant_id, record.period, record.start), record)
            case ArchivedFunnelDay():
                day = (tenant_id, record.funnel, record.day.start)
                return _put_new(store.funnel_days, day, record.day)
            case ArchivedTrack():
                if (tenant_id, record.session_id) not in store.sessions:
                    return False  # no session, no tracks (TrackLog.record)
                track = (tenant_id, record.session_id, record.report.track_sid)
                return _put_new(store.tracks, track, (record.report, record.counted))
            case ArchivedErasure():
                under_way = (record.pseudonym, record.started_at)
                return _put_new(store.erasures_under_way, (tenant_id, record.subject_id), under_way)
            case ArchivedFinishedRoom():
                room = (tenant_id, record.room_sid)
                return _put_new(store.finished_rooms, room, record.finished_at)
            case ArchivedWebhook():
                return _put_new(store.webhooks, (tenant_id, record.id), record.received_at)
            case ArchivedRefusals():
                return _put_new(store.refused_starts, (tenant_id, record.refused), record.count)


def _refusal_order(refused: RefusedStart) -> tuple[date, str, str, str]:
    """As the SQL stores' export orders them."""
    return refused.day, refused.subject_id, refused.kind, refused.reason.value


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
E = TypeVar("E", LedgerEntry, Alert)


def _put_new(where: dict[K, V], key: K, value: V) -> bool:
    if key in where:
        return False
    where[key] = value
    return True


def _same_entry(stored: LedgerEntry, entry: LedgerEntry) -> bool:
    if stored.id == entry.id:
        return True
    if stored.tenant_id != entry.tenant_id:
        return False
    if entry.idempotency_key is not None and stored.idempotency_key == entry.idempotency_key:
        return True
    return entry.session_id is not None and (stored.session_id, stored.session_revision) == (
        entry.session_id,
        entry.session_revision,
    )


def _append_new(entries: list[E], entry: E) -> bool:
    if any(e.id == entry.id for e in entries):
        return False
    entries.append(entry)
    return True
