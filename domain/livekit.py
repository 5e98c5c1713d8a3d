"""LiveKit rooms as sessions: who was in which room, from when to when.

A participant's session id is derived from the room's and the participant's sids, so every
webhook about that stay names the same session: a redelivered or reordered webhook is a replay.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from urllib.parse import urlsplit

from domain.errors import InvalidInput
from domain.events import Event
from domain.text import check_text

KIND = "livekit"
# How long a handled webhook's id is remembered: LiveKit retries a delivery for minutes, not days.
WEBHOOK_MEMORY = timedelta(days=30)
# Any fixed namespace works; it must never change, or ids of stays already recorded would.
SESSION_NAMESPACE = uuid.UUID("6f1d5a3e-2c0b-4d8e-9a55-4c1b7e0f9d21")
MAX_URL_LENGTH = 500


class RoomEventKind(StrEnum):
    PARTICIPANT_JOINED = "participant_joined"
    PARTICIPANT_LEFT = "participant_left"
    PARTICIPANT_CONNECTION_ABORTED = "participant_connection_aborted"
    ROOM_FINISHED = "room_finished"
    TRACK_PUBLISHED = "track_published"
    TRACK_UNPUBLISHED = "track_unpublished"


# What a published track's time adds to its session's usage, by the track's source.
TRACK_METERS = {
    "CAMERA": "video.seconds",
    "SCREEN_SHARE": "screen_share.seconds",
    "MICROPHONE": "audio.seconds",
}


# The session events a track's ends appear as (the old system's VIDEO_START/VIDEO_END, …).
TRACK_EVENT_PREFIX = {
    "video.seconds": "video",
    "screen_share.seconds": "screen_share",
    "audio.seconds": "audio",
}


@dataclass(frozen=True)
class TrackReport:
    """What webhooks said of one track of a stay: when it was published and unpublished (each
    known once it has been reported), and the meter its time adds to. An end that LiveKit did
    not report but the track's stay gave it, ending while the track was open, is
    `end_from_stay`: it stands for the track's end only until LiveKit's own report of it or the
    stay's final end replaces it (merge_reports)."""

    track_sid: str
    meter: str
    published_at: datetime | None = None
    unpublished_at: datetime | None = None
    end_from_stay: bool = False

    @property
    def seconds(self) -> int | None:
        """Whole seconds published (LiveKit stamps whole seconds), once both ends are known."""
        if self.published_at is None or self.unpublished_at is None:
            return None
        return max(0, round((self.unpublished_at - self.published_at).total_seconds()))


@dataclass(frozen=True)
class LiveKitAccount:
    """A LiveKit server's API key, the tenant its webhooks belong to, and the secret that
    verifies them and signs requests to the server (kept; never shown). With the server's `url`,
    reconciliation asks it who is in the rooms of open stays; without, only webhooks count."""

    api_key: str
    tenant_id: str
    api_secret: str
    url: str | None = None


def check_server_url(url: str | None) -> str | None:
    """A LiveKit server's URL as reconciliation calls it (http or https; None: webhooks only)."""
    if url is None:
        return None
    check_text("url", url, MAX_URL_LENGTH)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - a port that is not a number raises here
    except ValueError:
        raise InvalidInput("url", "is not a URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput("url", "must be an http:// or https:// URL with a host")
    if any(c.isspace() or not c.isprintable() for c in url):
        raise InvalidInput("url", "must not contain spaces or control characters")
    return url


@dataclass(frozen=True)
class RoomEvent:
    """A verified webhook, as much of it as sessions need."""

    id: str
    kind: str  # a RoomEventKind, or another event this service ignores
    created_at: datetime  # when it happened on the LiveKit server
    room_sid: str
    room_name: str
    participant_sid: str | None = None
    identity: str | None = None
    joined_at: datetime | None = None
    track_sid: str | None = None
    track_source: str | None = None  # CAMERA, MICROPHONE, SCREEN_SHARE, …

    @property
    def session_id(self) -> str:
        return session_id_of(self.room_sid, self.participant_sid or "")


def merge_reports(known: TrackReport, report: TrackReport) -> TrackReport:
    """What is known of a track after another report of it: the first report of each end wins
    (a redelivered webhook changes nothing), except an end from the track's stay, which any
    reported end replaces: LiveKit's own (the track ended before its stay) or the stay's again
    (two enders of a stay raced, and the end it kept is the one its tracks must take)."""
    end = known
    if known.unpublished_at is None or (known.end_from_stay and report.unpublished_at):
        end = report
    return TrackReport(
        known.track_sid,
        known.meter,
        known.published_at or report.published_at,
        end.unpublished_at,
        end.end_from_stay and end.unpublished_at is not None,
    )


def session_id_of(room_sid: str, participant_sid: str) -> str:
    return str(uuid.uuid5(SESSION_NAMESPACE, f"{room_sid}/{participant_sid}"))


def new_ends(known: TrackReport | None, merged: TrackReport) -> list[tuple[str, datetime]]:
    """The ends of a track that a report made known, for the first time or (its end, when the
    stay's end is replaced) again: ("start" | "end", at)."""
    ends = []
    if merged.published_at is not None and (known is None or known.published_at is None):
        ends.append(("start", merged.published_at))
    if merged.unpublished_at is not None and (
        known is None or known.unpublished_at != merged.unpublished_at
    ):
        ends.append(("end", merged.unpublished_at))
    return ends


@dataclass(frozen=True)
class TrackChange:
    """What one report changes of a track as a store keeps it (a TrackLog.record decided)."""

    track: TrackReport  # what is known of it afterwards
    ends: list[tuple[str, datetime]]  # ends known for the first time, or again: session events
    # What this report adds to its session's usage (None: nothing); below 0 when a corrected
    # end shortens a track whose seconds were counted.
    seconds: int | None
    counted: bool  # whether its seconds are in the usage afterwards
    changed: bool  # whether the track is stored otherwise afterwards


def stays_end_required(report: TrackReport) -> datetime | None:
    """The end its stay must still have (or none yet) for a report to be kept: an end from the
    stay is the stay's, and one that another ender's exit has since corrected is stale."""
    return report.unpublished_at if report.end_from_stay else None


def report_track(known: TrackReport | None, counted: bool, report: TrackReport) -> TrackChange:
    """A report of a track that is known as `known` (None: never reported) and whose seconds
    are `counted` or not yet: merge_reports decides its ends. The track's seconds are added by
    whichever report makes both ends known, and a report that moves an end of a counted track
    adds the difference, so that its usage always holds its seconds once."""
    merged = report if known is None else merge_reports(known, report)
    seconds = merged.seconds
    if counted and known is not None and seconds is not None and known.seconds is not None:
        seconds = (seconds - known.seconds) or None
    elif counted:
        seconds = None
    return TrackChange(
        merged,
        new_ends(known, merged),
        seconds,
        counted or seconds is not None,
        merged != known or seconds is not None,
    )


def track_events(
    session_id: str,
    first_sequence_no: int,
    meter: str,
    track_sid: str,
    ends: list[tuple[str, datetime]],
) -> list[Event]:
    """A track's newly known ends as session events, numbered from `first_sequence_no`."""
    prefix = TRACK_EVENT_PREFIX.get(meter, meter.split(".")[0])
    return [
        Event(
            session_id,
            first_sequence_no + n,
            f"{prefix}_{end}",
            at,
            category="track",
            data={"track_sid": track_sid},
        )
        for n, (end, at) in enumerate(ends)
    ]
