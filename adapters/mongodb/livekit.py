from contextlib import suppress
from datetime import datetime

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from adapters.mongodb import event_documents
from adapters.mongodb.documents import Document, increments
from adapters.mongodb.errors import raises_storage_errors
from application.livekit.ports import LiveKitAccounts, TrackLog, WebhookLog
from domain.errors import Conflict, NotFound
from domain.livekit import LiveKitAccount, TrackReport, track_events


@raises_storage_errors
class MongoLiveKitAccounts(LiveKitAccounts):
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._accounts = db["livekit_accounts"]

    async def add(self, account: LiveKitAccount) -> None:
        # Only the key's own tenant may replace its secret: for another tenant the filter
        # matches nothing and the upsert collides with the key's unique index. An account
        # without a url keeps the stored one.
        changes = {"api_secret": account.api_secret}
        if account.url is not None:
            changes["url"] = account.url
        try:
            await self._accounts.update_one(
                {"api_key": account.api_key, "tenant_id": account.tenant_id},
                {"$set": changes},
                upsert=True,
            )
        except DuplicateKeyError:
            raise Conflict(
                f"the LiveKit API key {account.api_key} belongs to another tenant"
            ) from None

    async def get(self, api_key: str) -> LiveKitAccount | None:
        found = await self._accounts.find_one({"api_key": api_key})
        return None if found is None else account_from_document(found)

    async def of_tenant(self, tenant_id: str) -> list[LiveKitAccount]:
        cursor = self._accounts.find({"tenant_id": tenant_id}, sort=[("api_key", 1)])
        return [account_from_document(found) async for found in cursor]

    async def set_url(self, tenant_id: str, api_key: str, url: str | None) -> LiveKitAccount:
        found = await self._accounts.find_one_and_update(
            {"api_key": api_key, "tenant_id": tenant_id},
            {"$set": {"url": url}},
            return_document=ReturnDocument.AFTER,
        )
        if found is None:
            raise NotFound(f"no LiveKit API key {api_key}")
        return account_from_document(found)


def account_from_document(found: Document) -> LiveKitAccount:
    return LiveKitAccount(
        found["api_key"], found["tenant_id"], found["api_secret"], found.get("url")
    )


@raises_storage_errors
class MongoWebhookLog(WebhookLog):
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._webhooks = db["webhooks"]

    async def seen(self, tenant_id: str, webhook_id: str) -> bool:
        found = await self._webhooks.find_one(
            {"tenant_id": tenant_id, "id": webhook_id}, {"_id": 1}
        )
        return found is not None

    async def record(self, tenant_id: str, webhook_id: str, at: datetime) -> None:
        with suppress(DuplicateKeyError):  # a concurrent delivery of it recorded it first
            await self._webhooks.update_one(
                {"tenant_id": tenant_id, "id": webhook_id},
                {"$setOnInsert": {"received_at": at}},
                upsert=True,
            )


@raises_storage_errors
class MongoTrackLog(TrackLog):
    """A stay's tracks live in its session's document (`tracks.<sid>`), so that marking a track
    counted and adding its seconds to the usage are one single-document update."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._sessions = db["sessions"]
        self._events = db["events"]

    async def record(self, tenant_id: str, session_id: str, report: TrackReport) -> bool:
        key = {"tenant_id": tenant_id, "id": session_id}
        track = f"tracks.{report.track_sid}"
        for end, name in (("published_at", "start"), ("unpublished_at", "end")):
            at = getattr(report, end)
            if at is None:
                continue
            # The first report of each end wins, and numbers its event in the same update.
            first = await self._sessions.find_one_and_update(
                {**key, f"{track}.{end}": None},
                {
                    "$set": {f"{track}.{end}": at, f"{track}.meter": report.meter},
                    "$inc": {"max_sequence_no": 1, "event_count": 1},
                },
                {"_id": 0, "max_sequence_no": 1},
                return_document=ReturnDocument.AFTER,
            )
            if first is not None:
                # A crash before this insert leaves a gap in the session's events, which its
                # event_gaps show; the track itself is recorded exactly.
                (event,) = track_events(
                    session_id,
                    first["max_sequence_no"],
                    report.meter,
                    report.track_sid,
                    [(name, at)],
                )
                await self._events.insert_one(event_documents.to_document(tenant_id, event))
        found = await self._sessions.find_one(key, {track: 1})
        known = ((found or {}).get("tracks") or {}).get(report.track_sid)
        if known is None or known.get("counted"):
            return False
        seconds = _report(report.track_sid, known).seconds
        if seconds is None:
            return False
        counted = await self._sessions.update_one(
            {**key, f"{track}.counted": {"$ne": True}},
            {
                "$set": {f"{track}.counted": True},
                "$inc": increments("usage", {report.meter: seconds}),
            },
        )
        return counted.modified_count == 1

    async def open_tracks(self, tenant_id: str, session_id: str) -> list[TrackReport]:
        found = await self._sessions.find_one({"tenant_id": tenant_id, "id": session_id})
        tracks = (found or {}).get("tracks") or {}
        reports = [_report(sid, known) for sid, known in sorted(tracks.items())]
        return [r for r in reports if r.published_at is not None and r.unpublished_at is None]


def _report(track_sid: str, known: Document) -> TrackReport:
    return TrackReport(
        track_sid, known["meter"], known.get("published_at"), known.get("unpublished_at")
    )
