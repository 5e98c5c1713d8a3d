"""A stay's tracks: their published time adds to the session's usage exactly once, whatever
the order and number of reports, on every store."""

from typing import Any

import pytest

from domain.events import Event
from domain.livekit import TrackReport
from domain.session import Exit
from domain.tenants import Tenant
from tests.contract.builders import NOW, OPEN, SHUT, a_session, at, stored_session
from tests.contract.races import Race

pytestmark = pytest.mark.anyio


def published(sid: str, minute: float, meter: str = "video.seconds") -> TrackReport:
    return TrackReport(sid, meter, published_at=at(minute))


def unpublished(sid: str, minute: float, meter: str = "video.seconds") -> TrackReport:
    return TrackReport(sid, meter, unpublished_at=at(minute))


def ended_with_stay(sid: str, minute: float, meter: str = "video.seconds") -> TrackReport:
    return TrackReport(sid, meter, unpublished_at=at(minute), end_from_stay=True)


async def usage(storage: Any, tenant: Tenant, session_id: str) -> dict[str, Any]:
    found = await storage.sessions.get(tenant.id, session_id)
    return dict(found.usage)


async def test_a_track_adds_its_seconds_once_when_both_ends_are_known(
    storage: Any, tenant: Tenant
) -> None:
    session = await stored_session(storage, tenant)

    first = await storage.tracks.record(tenant.id, session.id, published("TR_cam", 1))
    second = await storage.tracks.record(tenant.id, session.id, unpublished("TR_cam", 11))
    again = await storage.tracks.record(tenant.id, session.id, unpublished("TR_cam", 12))

    assert (first, second, again) == (False, True, False)
    assert await usage(storage, tenant, session.id) == {"video.seconds": 600}


async def test_an_unpublish_before_its_publish_counts_when_the_publish_arrives(
    storage: Any, tenant: Tenant
) -> None:
    session = await stored_session(storage, tenant)

    await storage.tracks.record(
        tenant.id, session.id, unpublished("TR_screen", 7, "screen_share.seconds")
    )
    assert await storage.tracks.tracks_ending_with_stay(tenant.id, session.id) == []
    await storage.tracks.record(
        tenant.id, session.id, published("TR_screen", 2, "screen_share.seconds")
    )

    assert await usage(storage, tenant, session.id) == {"screen_share.seconds": 300}


async def test_concurrent_reports_completing_a_track_count_it_once(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    session = await stored_session(storage, tenant)
    await storage.tracks.record(tenant.id, session.id, published("TR_mic", 0, "audio.seconds"))

    report = unpublished("TR_mic", 3, "audio.seconds")
    added = await race(*[lambda s: s.tracks.record(tenant.id, session.id, report)] * 8)

    assert sorted(added) == [False] * 7 + [True]
    assert await usage(storage, tenant, session.id) == {"audio.seconds": 180}


async def test_tracks_ending_with_their_stay_are_those_published_whose_end_livekit_never_said(
    storage: Any, tenant: Tenant
) -> None:
    session = await stored_session(storage, tenant)
    for sid in ("TR_a", "TR_b", "TR_c"):
        await storage.tracks.record(tenant.id, session.id, published(sid, 1))
    await storage.tracks.record(tenant.id, session.id, unpublished("TR_b", 2))
    await storage.tracks.record(tenant.id, session.id, ended_with_stay("TR_c", 5))
    await storage.sessions.close(tenant.id, session.id, Exit(at(5)), frozenset(), NOW, SHUT)

    still_open, ended_with_it = await storage.tracks.tracks_ending_with_stay(tenant.id, session.id)
    assert still_open == published("TR_a", 1)
    assert ended_with_it == TrackReport("TR_c", "video.seconds", at(1), at(5), end_from_stay=True)
    assert await storage.tracks.record(tenant.id, session.id, unpublished("TR_a", 5))
    assert await usage(storage, tenant, session.id) == {"video.seconds": 60 + 240 + 240}


async def test_livekits_own_end_of_a_track_replaces_the_end_its_stay_gave_it(
    storage: Any, tenant: Tenant
) -> None:
    session = await stored_session(storage, tenant)
    await storage.tracks.record(tenant.id, session.id, published("TR_cam", 1))
    assert await storage.tracks.record(tenant.id, session.id, ended_with_stay("TR_cam", 11))
    assert await usage(storage, tenant, session.id) == {"video.seconds": 600}

    assert await storage.tracks.record(tenant.id, session.id, unpublished("TR_cam", 5))
    # LiveKit's end stands: neither its stay's end nor a second report moves it.
    assert not await storage.tracks.record(tenant.id, session.id, ended_with_stay("TR_cam", 11))
    assert not await storage.tracks.record(tenant.id, session.id, unpublished("TR_cam", 9))

    assert await usage(storage, tenant, session.id) == {"video.seconds": 240}
    assert await storage.tracks.tracks_ending_with_stay(tenant.id, session.id) == []


async def test_a_track_ended_with_its_stay_takes_the_stays_end_again_when_it_moves(
    storage: Any, tenant: Tenant
) -> None:
    session = await stored_session(storage, tenant)
    await storage.tracks.record(tenant.id, session.id, published("TR_cam", 1))
    assert await storage.tracks.record(tenant.id, session.id, ended_with_stay("TR_cam", 60))
    assert await storage.tracks.record(tenant.id, session.id, ended_with_stay("TR_cam", 11))
    assert not await storage.tracks.record(tenant.id, session.id, ended_with_stay("TR_cam", 11))

    assert await usage(storage, tenant, session.id) == {"video.seconds": 600}
    # Each end it took is in its session's events; the last one is its end.
    found = await storage.events.find(tenant.id, session.id, 10)
    assert [(e.type, e.at) for e in found] == [
        ("video_start", at(1)),
        ("video_end", at(60)),
        ("video_end", at(11)),
    ]


async def test_concurrent_ends_of_a_track_from_livekit_and_from_its_stay_leave_livekits(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    session = await stored_session(storage, tenant)
    await storage.tracks.record(tenant.id, session.id, published("TR_cam", 1))

    own, from_stay = unpublished("TR_cam", 5), ended_with_stay("TR_cam", 11)
    await race(
        *[lambda s: s.tracks.record(tenant.id, session.id, own)] * 4,
        *[lambda s: s.tracks.record(tenant.id, session.id, from_stay)] * 4,
    )

    assert await usage(storage, tenant, session.id) == {"video.seconds": 240}
    assert await storage.tracks.tracks_ending_with_stay(tenant.id, session.id) == []


async def test_each_end_of_a_track_appears_once_as_a_session_event_after_the_last_one(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    session = await stored_session(storage, tenant)
    await storage.events.append(tenant.id, [(0, Event(session.id, 1, "join", at(0)))], NOW, OPEN)

    await storage.tracks.record(
        tenant.id, session.id, unpublished("TR_screen", 9, "screen_share.seconds")
    )
    await storage.tracks.record(tenant.id, session.id, published("TR_cam", 1))
    report = published("TR_screen", 4, "screen_share.seconds")
    await race(*[lambda s: s.tracks.record(tenant.id, session.id, report)] * 4)
    await storage.sessions.close(tenant.id, session.id, Exit(at(10)), frozenset(), NOW, SHUT)
    await storage.tracks.record(tenant.id, session.id, unpublished("TR_cam", 10))
    await storage.tracks.record(tenant.id, session.id, unpublished("TR_cam", 11))

    found = await storage.events.find(tenant.id, session.id, 10)
    assert [(e.sequence_no, e.type, e.at, (e.data or {}).get("track_sid")) for e in found] == [
        (1, "join", at(0), None),
        (2, "screen_share_end", at(9), "TR_screen"),
        (3, "video_start", at(1), "TR_cam"),
        (4, "screen_share_start", at(4), "TR_screen"),
        (5, "video_end", at(10), "TR_cam"),
    ]
    stored = await storage.sessions.get(tenant.id, session.id)
    assert (stored.event_count, stored.event_gaps) == (5, [])
    assert stored.usage == {"video.seconds": 540, "screen_share.seconds": 300}


async def test_a_track_of_a_session_that_does_not_exist_is_neither_kept_nor_counted(
    storage: Any, tenant: Tenant
) -> None:
    session = a_session(tenant)  # its stay's session is not stored (yet)

    first = await storage.tracks.record(tenant.id, session.id, published("TR_cam", 1))
    second = await storage.tracks.record(tenant.id, session.id, unpublished("TR_cam", 11))

    assert (first, second) == (False, False)
    assert await storage.tracks.tracks_ending_with_stay(tenant.id, session.id) == []
    # The session stored afterwards knows nothing of those reports: its track starts afresh.
    assert await storage.sessions.add(session)
    assert not await storage.tracks.record(tenant.id, session.id, unpublished("TR_cam", 11))
    assert await storage.sessions.get(tenant.id, session.id) is not None
    assert await usage(storage, tenant, session.id) == {}
    assert await storage.tracks.record(tenant.id, session.id, published("TR_cam", 2))
    assert await usage(storage, tenant, session.id) == {"video.seconds": 540}
    found = await storage.events.find(tenant.id, session.id, 10)
    assert [(e.sequence_no, e.type, e.at) for e in found] == [
        (1, "video_end", at(11)),
        (2, "video_start", at(2)),
    ]
