"""The ports of the livekit area: what its use cases need from storage and the outside world.

Whatever must be race-free is one method here; its docstring is the contract that the storage
contract suite (tests/contract) proves on every adapter with concurrent callers.
"""

from collections.abc import Collection
from datetime import datetime
from typing import Protocol

from domain.livekit import LiveKitAccount, RoomEvent, TrackReport


class LiveKitAccounts(Protocol):
    async def add(self, account: LiveKitAccount) -> None:
        """Register an API key for a tenant, or replace its secret; Conflict if the key belongs
        to another tenant. The account's url replaces the stored one when given; None keeps it
        (a secret rotated without --url does not forget the server)."""
        ...

    async def get(self, api_key: str) -> LiveKitAccount | None: ...

    async def of_tenant(self, tenant_id: str) -> list[LiveKitAccount]:
        """The tenant's accounts, by API key."""
        ...

    async def set_url(self, tenant_id: str, api_key: str, url: str | None) -> LiveKitAccount:
        """Set (None: remove) the server URL of one of the tenant's keys; NotFound if the key
        is not the tenant's."""
        ...


class WebhookLog(Protocol):
    """Webhook ids already handled, so that a redelivery is recognised."""

    async def seen(self, tenant_id: str, webhook_id: str) -> bool: ...

    async def record(self, tenant_id: str, webhook_id: str, at: datetime) -> bool:
        """Remember a handled webhook; True when this call did, False when it was remembered
        already (again: nothing changes). Of concurrent callers recording one id, exactly one
        gets True."""
        ...


class FinishedRooms(Protocol):
    """Rooms whose `room_finished` was handled (by room sid: a room's name is used again), kept
    as long as handled webhook ids (WEBHOOK_MEMORY, by RetentionStore.forget_webhooks), so that
    a stay stored after its room finished ends with it."""

    async def finish(self, tenant_id: str, room_sid: str, at: datetime) -> None:
        """Remember that the room finished at `at`; a room remembered already keeps its time."""
        ...

    async def finished_at(self, tenant_id: str, room_sid: str) -> datetime | None:
        """When the room finished, if that is remembered."""
        ...

    async def which_finished(
        self, tenant_id: str, room_sids: Collection[str]
    ) -> dict[str, datetime]:
        """Of these rooms, those remembered finished, with when (one storage call)."""
        ...


class WebhookVerifier(Protocol):
    def issuer(self, token: str) -> str | None:
        """The API key a token says it was signed with, before anything is verified."""
        ...

    def verify(self, body: str, token: str, account: LiveKitAccount) -> RoomEvent:
        """The event in `body`, if `token` is the account's valid, unexpired signature of exactly
        this body; Unauthorized otherwise."""
        ...


class TrackLog(Protocol):
    async def record(self, tenant_id: str, session_id: str, report: TrackReport) -> bool:
        """Merge what a webhook, or the track's stay ending, says of a track of the session
        (domain.livekit.merge_reports: the first report of each end wins, but an end from the
        stay is replaced by any other). A report of an end from the stay is kept only while the
        stay has not ended, or ends then (domain.livekit.stays_end_required), in the same atomic
        step: an ender whose end another's exit has corrected changes nothing. When both ends
        are known, add the track's seconds to the session's usage under its meter, exactly once
        whoever completes it and whatever the session's status, in the same atomic step that
        marks it counted; a report that moves an end of a counted track adds the difference in
        that step (below zero when it shortens it). True when this call changed the usage; the
        same step then leaves an ended session to be settled again under a new revision
        (domain.session.settled_again_on_usage), so that no crash after it leaves the session
        charged at its old price.
        Each end made known, for the first time or again, is also appended to the session's
        events (domain.livekit.track_events: video_start, video_end, …), numbered after its highest
        sequence number, whatever the session's status. domain.livekit.report_track decides.
        A session that does not exist has no tracks: the report is neither kept nor counted
        (False), and a session stored later knows nothing of it. (The webhook's use case stores
        the stay's session before it reports a track, unless the webhook does not say whose
        track it is.)"""
        ...

    async def tracks_ending_with_stay(self, tenant_id: str, session_id: str) -> list[TrackReport]:
        """The session's published tracks whose end LiveKit has not reported: still open, or
        ended with their stay (`end_from_stay`), by track sid."""
        ...


class LiveKitUnavailable(Exception):
    """A LiveKit server did not answer, or answered with an error (a refused key included):
    what it would have said is unknown. `detail` is one line for an operator (the server's URL
    aside)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class RoomService(Protocol):
    async def participants(self, account: LiveKitAccount, room: str) -> set[str] | None:
        """The sids of the participants in the room now, asked of the account's server (which
        must have a url) with its key; None when the server has no such room. Sids, not
        identities: someone who left and joined again is a new participant (a new stay), so an
        old stay of theirs must not look present. LiveKitUnavailable when the server does not
        answer in a few seconds or answers with an error."""
        ...
