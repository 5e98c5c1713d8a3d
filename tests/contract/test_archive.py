"""A tenant's whole state exported, and imported into a store that has it already or not."""

import json
from collections import Counter
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from application.data_rights.erase_subject import ABANDONED_AFTER
from application.funnels.ports import FunnelDay, FunnelRow
from application.ports import Window
from application.retention.apply_retention import ApplyRetentionCommand
from application.rollups.roll_up_usage import RollUpUsageCommand
from application.sessions.ports import SessionFilter
from application.transfer import import_tenant
from application.transfer.export_tenant import ExportTenantQuery
from application.transfer.import_tenant import ImportTenantCommand
from application.transfer.tenant_export_format import RECORD_TYPES
from domain.calendar import Calendar, Period
from domain.erasure import Pseudonyms
from domain.errors import Conflict, InvalidInput
from domain.funnels import Funnel, FunnelTally, Stage, StageMatch
from domain.livekit import TrackReport
from domain.plans import Subscription
from domain.refusals import Refusal, RefusedStart
from domain.rollups import Activity, Rollup, ServerLoad
from domain.tenants import Tenant
from tests.contract.builders import (
    T0,
    a_tenant_with_everything,
    at,
    set_at,
    stored_session,
    wired,
)
from tests.fakes import FakeClock

pytestmark = pytest.mark.anyio


async def export(storage: Any, name: str) -> list[str]:
    exported = await wired(storage).use_cases().export_tenant()(ExportTenantQuery(name))
    return [line async for line in exported.lines]


PHOTO = Funnel(
    "photo",
    "kiosk",
    (Stage("frame", StageMatch("screen_enter", label="frame")), Stage("pay", StageMatch("pay"))),
)


HOUR = Rollup(
    Period.HOUR,
    at(0).replace(minute=0, second=0, microsecond=0),
    [
        Activity(
            "practice",
            "pdf-1",
            sessions_started=2,
            sessions_ended=1,
            active_seconds=1234.567,
            events=6,
            meters={"answers": 8, "pages.read": Decimal("3.25")},
            track_seconds={"video.seconds": 12.5},
            dimensions=(("region", "kr"), ("store", "gangnam")),
            ended_statuses={"completed": 1},
            ended_seconds=300.0,
            errors=2,
            fatal_errors=1,
            sales={"KRW": 1},
            sales_net={"KRW": Decimal("15000"), "USD": Decimal("-0.1")},
        ),
        Activity("webinar", "webinar-1", sessions_started=1),
    ],
    ServerLoad(2, 5000, 61.0, 30.5, 24, 12),
)
DAY = Rollup(Period.DAY, HOUR.start - timedelta(hours=12), HOUR.activity, HOUR.load)


def a_tally(reached: int) -> FunnelTally:
    return FunnelTally(
        2, [reached, 1], [reached - 1, 0], [Counter({1500: 1})], Counter({"completed": reached})
    )


PHOTO_DAY = FunnelDay(
    DAY.start,
    PHOTO.fingerprint(("store",)),
    True,
    a_tally(3),
    [
        FunnelRow("booth-1", (("store", "gangnam"),), a_tally(2)),
        FunnelRow("booth-2", (), a_tally(1)),
    ],
    ("store",),
    DAY.start + timedelta(days=1),
)


CAMERA = TrackReport("TR_cam", "video.seconds", published_at=at(31), unpublished_at=at(33))
SCREEN = TrackReport("TR_screen", "screen_share.seconds", published_at=at(32))


async def everything_and_a_funnel(storage: Any) -> Tenant:
    """With a funnel, rollups and a funnel day whose raw data is gone (by retention), a stay
    with a camera closed (counted) and a screen share still open, a room LiveKit said finished,
    a handled webhook, three refused starts (two of one subject), and an erasure of dana under
    way (it died before it erased her session)."""
    tenant = await a_tenant_with_everything(storage)
    await storage.funnels.put(tenant.id, PHOTO)
    for rollup in (HOUR, DAY):
        await storage.rollups.replace(tenant.id, rollup)
    await storage.funnel_days.replace(tenant.id, PHOTO.name, PHOTO_DAY)
    stay = await stored_session(storage, tenant, 30, kind="livekit", resource_id="room-1")
    for track in (CAMERA, SCREEN):
        await storage.tracks.record(tenant.id, stay.id, track)
    await storage.finished_rooms.finish(tenant.id, "RM_done", at(40))
    assert await storage.webhooks.record(tenant.id, "EV_handled", at(41))
    for subject in ("ana", "ana", "bo"):
        refused = RefusedStart(subject, "counseling", Refusal.TRIAL_EXHAUSTED, at(42).date())
        await storage.refused_starts.record(tenant.id, refused)
    # An erasure of dana that died before it erased anything of her session.
    await stored_session(storage, tenant, 43, subject_id="dana", attributes={"ip": "10.0.0.9"})
    await storage.erasure.pseudonym_for(tenant.id, "dana", Pseudonyms().of("dana"), at(44))
    return tenant


async def imported_as(storage: Any, lines: list[str], tenant_id: str) -> None:
    """Import the export under another tenant id and name (as into another store)."""
    moved = lines[1].replace(tenant_id, "moved-id").replace('"name":"exam-prep"', '"name":"moved"')
    await (
        wired(storage)
        .use_cases()
        .import_tenant()(ImportTenantCommand([lines[0], moved, *lines[2:]]))
    )


async def test_an_export_carries_every_kind_of_state(storage: Any) -> None:
    await everything_and_a_funnel(storage)

    lines = await export(storage, "exam-prep")

    kinds = [json.loads(line)["record"] for line in lines[1:-1]]
    assert json.loads(lines[-1]) == {"record": "end", "records": len(kinds)}
    assert kinds == sorted(kinds, key=kinds.index)  # grouped (its sessions fit one page)
    assert list(dict.fromkeys(kinds)) == list(RECORD_TYPES)  # in the order an import stores
    assert kinds.count("session") == 6 and kinds.count("event") == 9  # and 3 of the tracks
    assert kinds.count("sale") == 2  # the sale and its refund
    assert kinds.count("rollup") == 2 and kinds.count("funnel_day") == 1
    assert kinds.count("track") == 2
    assert kinds.count("finished_room") == kinds.count("webhook") == 1
    assert kinds.count("refused_start") == 2 and kinds.count("erasure") == 1


async def test_an_erasure_under_way_when_its_tenant_moved_is_finished_where_it_moved(
    storage: Any, memory: Any
) -> None:
    """EraseSubject: an erasure that died midway is finished by retention once it is
    ABANDONED_AFTER old, under the pseudonym it gave. Moved before it was finished, the
    subject's personal data would have stayed on the new store for good, unerased and with
    no trace of the erasure; now the new store's retention finishes it."""
    tenant = await everything_and_a_funnel(memory)
    await (
        wired(storage)
        .use_cases()
        .import_tenant()(ImportTenantCommand(await export(memory, "exam-prep")))
    )
    pseudonym = await storage.erasure.kept(tenant.id, "dana")
    assert pseudonym == await memory.erasure.kept(tenant.id, "dana")

    abandoned = FakeClock(at(44) + ABANDONED_AFTER + timedelta(minutes=1))
    await wired(storage, abandoned).jobs().apply_retention()(ApplyRetentionCommand("exam-prep"))

    (dana,) = [
        s
        for s in await storage.sessions.find(tenant.id, SessionFilter(), limit=100)
        if s.started_at == at(43)
    ]
    assert (dana.subject_id, dana.attributes) == (pseudonym, {})
    assert await storage.erasure.kept(tenant.id, "dana") is None


async def test_a_moved_tenant_keeps_its_finished_rooms_handled_webhooks_and_refused_starts(
    storage: Any, memory: Any
) -> None:
    """A redelivery of a webhook handled before the move is recorded once, a late join into a
    room that finished before it ends with the room, and the trial report counts the refused
    starts of before: moved from memory into this store, then exported from it the same."""
    tenant = await everything_and_a_funnel(memory)
    lines = await export(memory, "exam-prep")

    await wired(storage).use_cases().import_tenant()(ImportTenantCommand(lines))

    assert not await storage.webhooks.record(tenant.id, "EV_handled", at(50))
    assert await storage.finished_rooms.finished_at(tenant.id, "RM_done") == at(40)
    day = at(42).date()
    assert await storage.refused_starts.tally(tenant.id, day, day) == (
        await memory.refused_starts.tally(tenant.id, day, day)
    )
    moved = {"finished_room", "webhook", "refused_start"}
    again = [
        line for line in await export(storage, "exam-prep") if json.loads(line)["record"] in moved
    ]
    assert again == [line for line in lines if json.loads(line)["record"] in moved]


async def test_sessions_given_each_with_its_events_import_whole_in_any_batches(
    storage: Any, memory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MongoDB's export gives a few sessions, their events and tracks, then the next few
    (MongoTenantArchive._as_they_were): an import's batch may then begin with one session's
    events or tracks and go on with the next sessions and theirs, and it stores them in the
    format's order (a track stored before its session would not be kept). Here each session is
    followed by its own records."""
    tenant = await everything_and_a_funnel(memory)
    for n in range(3):  # more sessions with tracks than the stay alone
        session = await stored_session(memory, tenant, 40 + n)
        assert await memory.tracks.record(tenant.id, session.id, replace(CAMERA, track_sid=f"T{n}"))
    lines = await export(memory, "exam-prep")
    records = [json.loads(line) for line in lines[1:-1]]
    own = {"event", "track"}
    interleaved = []
    for line, record in zip(lines[1:-1], records, strict=True):
        if record["record"] == "session":
            interleaved += [line] + [
                other
                for other, r in zip(lines[1:-1], records, strict=True)
                if r["record"] in own and r["session_id"] == record["id"]
            ]
        elif record["record"] not in own:
            interleaved.append(line)
    assert len(interleaved) == len(records) and interleaved != lines[1:-1]
    # A batch size that puts a track first in a batch, before a session whose track follows.
    batch = next(size for size in range(2, 20) if _track_before_its_session(interleaved, size))
    monkeypatch.setattr(import_tenant, "BATCH", batch)

    await (
        wired(storage)
        .use_cases()
        .import_tenant()(ImportTenantCommand([lines[0], *interleaved, lines[-1]]))
    )

    moved = Counter(json.loads(line)["record"] for line in await export(storage, "exam-prep"))
    assert moved == Counter(json.loads(line)["record"] for line in lines), batch


def _track_before_its_session(lines: list[str], size: int) -> bool:
    for start in range(0, len(lines), size):
        batch = [json.loads(line) for line in lines[start : start + size]]
        kinds = [r["record"] for r in batch]
        sessions = {r["id"] for r in batch if r["record"] == "session"}
        first_track_before_a_session = "track" in kinds and kinds.index("track") < max(
            (i for i, kind in enumerate(kinds) if kind == "session"), default=-1
        )
        tracked_here = any(r["record"] == "track" and r["session_id"] in sessions for r in batch)
        if first_track_before_a_session and tracked_here:
            return True
    return False


async def test_importing_what_a_store_holds_already_adds_nothing(storage: Any) -> None:
    await everything_and_a_funnel(storage)
    before = await export(storage, "exam-prep")

    counts = await wired(storage).use_cases().import_tenant()(ImportTenantCommand(before))

    assert sum(counts.new.values()) == 0
    assert sum(counts.present.values()) == len(before) - 2  # all but the header and the end
    assert await export(storage, "exam-prep") == before


async def test_an_imported_subscription_history_goes_on_where_it_stopped(storage: Any) -> None:
    tenant = await a_tenant_with_everything(storage)

    await imported_as(storage, await export(storage, "exam-prep"), tenant.id)
    await storage.subscriptions.put("moved-id", Subscription("jun", "free", at(60)), at(5))

    history = await storage.subscriptions.history("moved-id", "jun")
    assert [(e.number, e.subscription.plan_id) for e in history] == [(2, "free"), (1, "pass")]
    assert (await storage.subscriptions.get("moved-id", "jun")).plan_id == "free"


async def test_an_imported_funnel_is_the_funnel_exported(storage: Any) -> None:
    tenant = await everything_and_a_funnel(storage)

    await imported_as(storage, await export(storage, "exam-prep"), tenant.id)

    assert await storage.funnels.all("moved-id") == [PHOTO]


async def test_imported_rollups_and_funnel_days_are_those_exported(storage: Any) -> None:
    """Reports read rollups of days whose events and snapshots retention has deleted: a move
    carries them figure for figure (exact decimals, dimensions, tallies), and the funnel day's
    groups as the store keeps them."""
    tenant = await everything_and_a_funnel(storage)

    await imported_as(storage, await export(storage, "exam-prep"), tenant.id)

    for rollup in (HOUR, DAY):
        window = Window(rollup.start, rollup.start + timedelta(seconds=1))
        assert await storage.rollups.find("moved-id", rollup.period, window) == [rollup]
    days, day = storage.funnel_days, Calendar().bucket(Period.DAY, DAY.start)
    assert await days.wholes("moved-id", "photo", [DAY.start]) == [PHOTO_DAY.whole]
    rows = await days.rows("moved-id", "photo", [DAY.start], {})
    assert sorted(rows, key=lambda r: r.resource_id) == PHOTO_DAY.rows
    by_store = await days.groups("moved-id", "photo", [DAY.start], "attributes.store")
    assert sorted(by_store, key=str) == [("gangnam", a_tally(2)), (None, a_tally(1))]
    assert await days.stored("moved-id", "photo", PHOTO_DAY.fingerprint, [day]) == {DAY.start: True}
    # Its end came with it: the 23-hour day that starts then elsewhere is another.
    short = replace(day, end=day.end - timedelta(hours=1))
    assert await days.stored("moved-id", "photo", PHOTO_DAY.fingerprint, [short]) == {}


async def test_a_tenant_whose_name_is_taken_here_is_refused(storage: Any) -> None:
    await a_tenant_with_everything(storage)
    lines = await export(storage, "exam-prep")
    await storage.tenants.add(Tenant("another-id", "elsewhere", T0))
    renamed = [lines[0], lines[1].replace('"name":"exam-prep"', '"name":"elsewhere"'), *lines[2:]]

    with pytest.raises(Conflict):
        await wired(storage).use_cases().import_tenant()(ImportTenantCommand(renamed))


async def test_rollups_of_more_buckets_than_an_export_reads_at_once_move_whole(
    storage: Any,
) -> None:
    """The SQL stores read buckets and funnel days a few at a time (archive.BUCKETS), hours and
    days in one go: none is left out or read twice at the edges."""
    tenant = await everything_and_a_funnel(storage)
    hours = [replace(HOUR, start=HOUR.start + timedelta(hours=n)) for n in range(1, 60)]
    for rollup in hours:
        await storage.rollups.replace(tenant.id, rollup)
    for n in range(1, 30):
        later = timedelta(days=n)
        start = PHOTO_DAY.start + later
        day = replace(PHOTO_DAY, start=start, end=start + timedelta(days=1))
        await storage.funnel_days.replace(tenant.id, PHOTO.name, day)

    lines = await export(storage, "exam-prep")
    await imported_as(storage, lines, tenant.id)

    kinds = Counter(json.loads(line)["record"] for line in lines)
    assert (kinds["rollup"], kinds["funnel_day"]) == (61, 30)
    everything = Window(None, None)
    assert await storage.rollups.find("moved-id", Period.HOUR, everything) == [HOUR, *hours]
    assert await storage.rollups.find("moved-id", Period.DAY, everything) == [DAY]
    starts = [PHOTO_DAY.start + timedelta(days=n) for n in range(30)]
    assert len(await storage.funnel_days.wholes("moved-id", "photo", starts)) == 30


async def test_a_moved_stays_tracks_add_nothing_there_and_its_open_one_counts_when_it_ends(
    storage: Any,
) -> None:
    """A stay moved while its screen share is open: the camera's 120 s are in its usage once
    (the import adds nothing for a track counted already), and the screen share's end, reported
    by a webhook on the new store, adds its seconds then (TrackLog.record)."""
    tenant = await everything_and_a_funnel(storage)
    lines = await export(storage, "exam-prep")
    (stay,) = [r for r in map(json.loads, lines) if r.get("kind") == "livekit"]

    await imported_as(storage, lines, tenant.id)
    moved = await storage.sessions.get("moved-id", stay["id"])
    assert moved.usage == {"video.seconds": 120}
    assert await storage.tracks.tracks_ending_with_stay("moved-id", stay["id"]) == [SCREEN]
    ended = TrackReport(SCREEN.track_sid, SCREEN.meter, unpublished_at=at(35))
    assert await storage.tracks.record("moved-id", stay["id"], ended)

    moved = await storage.sessions.get("moved-id", stay["id"])
    assert moved.usage == {"video.seconds": 120, "screen_share.seconds": 180}
    again = await export(storage, "moved")
    tracks = [r for r in map(json.loads, again) if r["record"] == "track"]
    assert [(t["report"]["track_sid"], t["counted"]) for t in tracks] == [
        ("TR_cam", True),
        ("TR_screen", True),
    ]


async def test_a_track_whose_session_is_not_there_is_not_kept(storage: Any) -> None:
    """TrackLog.record: no session, no tracks; an import keeps to it (a file edited by hand)."""
    tenant = await everything_and_a_funnel(storage)
    lines = await export(storage, "exam-prep")
    tracks = [n for n, line in enumerate(lines) if json.loads(line)["record"] == "track"]
    orphan = json.loads(lines[tracks[0]])
    orphan["session_id"] = "no-such-session"
    lines[tracks[0]] = json.dumps(orphan)

    counts = (
        await wired(storage)
        .use_cases()
        .import_tenant()(
            ImportTenantCommand(
                [
                    lines[0],
                    lines[1]
                    .replace(tenant.id, "moved-id")
                    .replace('"name":"exam-prep"', '"name":"moved"'),
                    *lines[2:],
                ]
            )
        )
    )

    assert (counts.new["track"], counts.present["track"]) == (1, 1)
    assert not await storage.tracks.tracks_ending_with_stay("moved-id", "no-such-session")


async def test_a_moved_tenants_hours_rolled_up_again_keep_their_track_time(storage: Any) -> None:
    """The new store's rollup job makes again the hours whose sources retention has kept: their
    track time comes from the tracks moved with the sessions."""
    tenant = await everything_and_a_funnel(storage)
    clock = FakeClock(at(180))
    await wired(storage, clock).jobs().roll_up_usage()(RollUpUsageCommand("exam-prep"))
    lines = await export(storage, "exam-prep")

    await imported_as(storage, lines, tenant.id)
    await wired(storage, clock).jobs().roll_up_usage()(RollUpUsageCommand("moved"))

    start = at(31).replace(minute=0, second=0, microsecond=0)
    hour = Window(start, start + timedelta(seconds=1))
    (there,) = await storage.rollups.find("moved-id", Period.HOUR, hour, kind="livekit")
    (here,) = await storage.rollups.find(tenant.id, Period.HOUR, hour, kind="livekit")
    assert [a.track_seconds for a in there.activity] == [{"video.seconds": 120.0}]
    assert there.activity == here.activity


def _with(record: str, path: tuple[str, ...], value: Any) -> tuple[str, Any]:
    return record, set_at(path, value)


A_TIME = {"$time": "1999-12-31T23:59:59+00:00"}
MALFORMED = {
    "an erasure without its subject": _with("erasure", ("subject_id",), ""),
    "a pseudonym no erasure gives": _with("erasure", ("pseudonym",), "dana-2"),
    "a pseudonym longer than the columns": _with("erasure", ("pseudonym",), "erased:" + "a" * 58),
    "an erasure begun as text": _with("erasure", ("started_at",), "2026-11-24T12:44:00Z"),
    "a room without a sid": _with("finished_room", ("room_sid",), ""),
    "a room sid longer than the columns": _with("finished_room", ("room_sid",), "R" * 201),
    "a finish given as text": _with("finished_room", ("finished_at",), "2026-11-24T12:40:00Z"),
    "a finish before 2000": _with("finished_room", ("finished_at",), A_TIME),
    "a webhook without an id": _with("webhook", ("id",), ""),
    "a webhook id longer than the columns": _with("webhook", ("id",), "E" * 201),
    "a webhook received as a number": _with("webhook", ("received_at",), 1764000000),
    "no refused start": _with("refused_start", ("count",), 0),
    "a negative count": _with("refused_start", ("count",), -1),
    "a count past 64 bits": _with("refused_start", ("count",), 2**63),
    "a count given as text": _with("refused_start", ("count",), "2"),
    "a kind that is no kind": _with("refused_start", ("refused", "kind"), "Not A Kind"),
    "a reason the service never gives": _with("refused_start", ("refused", "reason"), "bored"),
    "a day given as text": _with("refused_start", ("refused", "day"), "2026-11-24"),
    "a subject longer than the columns": _with(
        "refused_start", ("refused", "subject_id"), "s" * 201
    ),
}


@pytest.mark.parametrize("case", MALFORMED, ids=list(MALFORMED))
async def test_a_malformed_erasure_room_webhook_or_refusal_line_is_refused_naming_it(
    storage: Any, memory: Any, case: str
) -> None:
    """README: a line the service could not have made is refused, naming the line, before
    anything is stored (not a crash in the target's storage layer, nor a report that adds up
    what never happened)."""
    tenant = await everything_and_a_funnel(memory)
    lines = await export(memory, "exam-prep")
    kind, edit = MALFORMED[case]
    number = next(n for n, line in enumerate(lines) if json.loads(line)["record"] == kind)
    record = json.loads(lines[number])
    edit(record)
    lines[number] = json.dumps(record)

    with pytest.raises(InvalidInput) as refused:
        await wired(storage).use_cases().import_tenant()(ImportTenantCommand(lines))

    assert f"line {number + 1}" in str(refused.value)
    assert await storage.tenants.get(tenant.id) is None
