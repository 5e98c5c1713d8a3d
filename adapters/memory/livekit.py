from collections.abc import Collection
from dataclasses import replace
from datetime import datetime

from adapters.memory.store import MemoryStore
from application.livekit.ports import FinishedRooms, LiveKitAccounts, TrackLog, WebhookLog
from domain.errors import Conflict, NotFound
from domain.livekit import (
    LiveKitAccount,
    TrackReport,
    report_track,
    stays_end_required,
    track_events,
)


class MemoryLiveKitAccounts(LiveKitAccounts):
    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    async def add(self, account: LiveKitAccount) -> None:
        held = self._store.livekit_accounts.get(account.api_key)
        if held is not None and held.tenant_id != account.tenant_id:
            raise Conflict(f"the LiveKit API key {account.api_key} belongs to another tenant")
        if account.url is None and held is not None:
            account = replace(account, url=held.url)
        self._store.livekit_accounts[account.api_key] = account

    async def get(self, api_key: str) -> LiveKitAccount | None:
        return self._store.livekit_accounts.get(api_key)

    async def of_tenant(self, tenant_id: str) -> list[LiveKitAccount]:
        accounts = self._store.livekit_accounts
        return [accounts[key] for key in sorted(accounts) if accounts[key].tenant_id == tenant_id]

    async def set_url(self, tenant_id: str, api_key: str, url: str | None) -> LiveKitAccount:
        held = self._store.livekit_accounts.get(api_key)
        if held is None or held.tenant_id != tenant_id:
            raise NotFound(f"no LiveKit API key {api_key}")
        account = self._store.livekit_accounts[api_key] = replace(held, url=url)
        return account


class MemoryWebhookLog(WebhookLog):
    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    async def seen(self, tenant_id: str, webhook_id: str) -> bool:
        return (tenant_id, webhook_id) in self._store.webhooks

    async def record(self, tenant_id: str, webhook_id: str, at: datetime) -> bool:
        if (tenant_id, webhook_id) in self._store.webhooks:
            return False
        self._store.webhooks[(tenant_id, webhook_id)] = at
        return True


class MemoryTrackLog(TrackLog):
    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    async def record(self, tenant_id: str, session_id: str, report: TrackReport) -> bool:
        session = self._store.sessions.get((tenant_id, session_id))
        if session is None:
            return False  # no session, no tracks: nothing kept
        required = stays_end_required(report)
        if required is not None and session.ended_at not in (None, required):
            return False  # a stale ender's
        key = (tenant_id, session_id, report.track_sid)
        known, counted = self._store.tracks.get(key, (None, False))
        change = report_track(known, counted, report)
        self._store.tracks[key] = (change.track, change.counted)
        if change.ends:
            first = session.max_sequence_no + 1
            stored = self._store.events.setdefault((tenant_id, session_id), {})
            track = change.track
            for event in track_events(session_id, first, track.meter, track.track_sid, change.ends):
                stored[event.sequence_no] = event
            session.event_count += len(change.ends)
            session.max_sequence_no += len(change.ends)
        if change.seconds is None:
            return False
        session.add_usage({change.track.meter: change.seconds})
        session.usage_added()  # in the same step, as the other stores do
        return True

    async def tracks_ending_with_stay(self, tenant_id: str, session_id: str) -> list[TrackReport]:
        return [
            report
            for (tenant, session, _), (report, _) in sorted(self._store.tracks.items())
            if (tenant, session) == (tenant_id, session_id)
            and report.published_at is not None
            and (report.unpublished_at is None or report.end_from_stay)
        ]


class MemoryFinishedRooms(FinishedRooms):
    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    async def finish(self, tenant_id: str, room_sid: str, at: datetime) -> None:
        self._store.finished_rooms.setdefault((tenant_id, room_sid), at)

    async def finished_at(self, tenant_id: str, room_sid: str) -> datetime | None:
        return self._store.finished_rooms.get((tenant_id, room_sid))

    async def which_finished(
        self, tenant_id: str, room_sids: Collection[str]
    ) -> dict[str, datetime]:
        finished = self._store.finished_rooms
        return {sid: finished[tenant_id, sid] for sid in room_sids if (tenant_id, sid) in finished}
