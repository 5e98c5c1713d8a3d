"""Review of today's commits, hostile, on every store: the ledger's and the alerts' Position
cursors (b7996cf), snapshots, keys, plans, funnels and subscriptions paged (aa56769), the cursor
bound (e18f296), and a funnel's day kept with its end (c76552b, migration 0034)."""

import json
import uuid
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, inspect, text

from adapters.mongodb.storage import connect
from adapters.sqlalchemy.storage import MIGRATIONS
from adapters.sqlalchemy.tables import funnel_days
from application.credits.list_alerts import ListAlertsQuery
from application.credits.list_ledger import ListLedgerQuery
from application.funnels.list_funnels import ListFunnelsQuery
from application.funnels.ports import FunnelDay, FunnelRow
from application.pagination import MAX_CURSOR, decode_cursor, encode_cursor
from application.snapshots.list_snapshots import ListSnapshotsQuery
from application.tenants.list_api_keys import ListApiKeysQuery
from application.transfer.export_tenant import ExportTenantQuery
from application.trials.list_plans import ListPlansQuery
from application.trials.list_subscriptions import ListSubscriptionsQuery
from domain.calendar import Bucket, Calendar, Period
from domain.errors import InvalidInput
from domain.events import Event
from domain.funnels import FunnelTally
from domain.plans import Plan, Subscription
from domain.session import Exit, SessionStatus
from domain.snapshots import Snapshot
from domain.tenants import ApiKey, Role, Tenant
from tests.conftest import open_storage
from tests.contract.builders import (
    NOW,
    OPEN,
    SHUT,
    T0,
    a_grant,
    add_tenant,
    at,
    stored_session,
    wired,
)
from tests.contract.test_funnels_and_trials_review import (
    TWO_STAGES,
    funnel_report,
    reached,
    roll_up,
)
from tests.contract.test_transfer_and_retention_review import import_into

pytestmark = pytest.mark.anyio


def refused_cursor(raised: pytest.ExceptionInfo[InvalidInput]) -> bool:
    return raised.value.field == "cursor"


# --- keys, plans, funnels, subscriptions: pages of a list read whole ------------------------------


async def a_key(storage: Any, tenant: Tenant, created: datetime, name: str) -> ApiKey:
    key, _ = ApiKey.issue(str(uuid.uuid4()), tenant.id, Role.APP, created, name=name)
    await storage.api_keys.add(key)
    return key


async def walk_keys(storage: Any, tenant: Tenant, limit: int, between: Any = None) -> list[str]:
    """Names of the keys a walk lists, `between(page_number)` run after each page."""
    names: list[str] = []
    cursor, number = None, 0
    while True:
        page = (
            await wired(storage)
            .use_cases()
            .list_api_keys()(ListApiKeysQuery(tenant.id, limit, cursor))
        )
        names += [k.name or "" for k in page.items]
        number += 1
        assert number <= 20, "the walk does not end"
        if between is not None:
            await between(number)
        if page.next_cursor is None:
            return names
        cursor = page.next_cursor


async def test_keys_made_in_one_millisecond_walk_once_each_while_one_is_revoked_and_one_added(
    storage: Any, tenant: Tenant
) -> None:
    """Three keys created at the same instant (a tie on created_at, broken by id), an older one
    and a later one; a page of one at a time. After the first page a key not yet listed is
    revoked and a new key is made: every key is listed once, oldest first, the new one last."""
    keys = [await a_key(storage, tenant, T0, f"tie-{n}") for n in range(3)]
    await a_key(storage, tenant, at(-1), "older")
    await a_key(storage, tenant, at(1), "later")
    tied = [k.name for k in sorted(keys, key=lambda k: k.id)]

    async def meanwhile(page: int) -> None:
        if page == 1:
            await storage.api_keys.revoke(tenant.id, keys[2].id, at(2))
            await a_key(storage, tenant, at(3), "new")

    names = await walk_keys(storage, tenant, 1, meanwhile)

    assert names == ["older", *tied, "later", "new"]


async def test_plans_and_funnels_walk_once_each_while_one_is_set_again_or_deleted(
    storage: Any, tenant: Tenant
) -> None:
    """Plans by id and funnels by name, a page of two: one set again (now the default) and one
    funnel deleted between pages leaves the others listed once each, none skipped."""
    for plan_id in ("a", "b", "c", "d", "e"):
        await storage.plans.put(tenant.id, Plan(plan_id))
    for name in ("f1", "f2", "f3", "f4", "f5"):
        await storage.funnels.put(tenant.id, replace(TWO_STAGES, name=name))
    use_cases = wired(storage).use_cases()

    first = await use_cases.list_plans()(ListPlansQuery(tenant.id, 2))
    await storage.plans.put(tenant.id, Plan("c", default=True))
    await storage.plans.put(tenant.id, Plan("a", unlimited=True))  # listed already
    rest = await use_cases.list_plans()(ListPlansQuery(tenant.id, 2, first.next_cursor))
    last = await use_cases.list_plans()(ListPlansQuery(tenant.id, 2, rest.next_cursor))
    plans = [p.id for p in first.items + rest.items + last.items]

    funnels = await use_cases.list_funnels()(ListFunnelsQuery(tenant.id, 2))
    await storage.funnels.delete(tenant.id, "f2")  # the page's last: its place stays
    await storage.funnels.delete(tenant.id, "f3")  # not listed yet: gone
    more = await use_cases.list_funnels()(ListFunnelsQuery(tenant.id, 2, funnels.next_cursor))

    assert plans == ["a", "b", "c", "d", "e"]
    assert last.next_cursor is None
    assert rest.items[0].default
    assert [f.name for f in funnels.items + more.items] == ["f1", "f2", "f4", "f5"]
    assert more.next_cursor is None


async def test_subscriptions_walk_newest_first_once_each_while_more_are_put(
    storage: Any, tenant: Tenant
) -> None:
    """Five subscriptions of a subject, two a page, newest first; two more put between pages
    are newer than the walk's place: the walk still lists each of the five once, never the
    first page again."""
    plan = Plan("pro")
    await storage.plans.put(tenant.id, plan)

    async def put(n: int) -> None:
        subscription = Subscription("ana", plan.id, at(1000 + n))
        await storage.subscriptions.put(tenant.id, subscription, at(n))

    for n in range(1, 6):
        await put(n)
    listing = wired(storage).use_cases().list_subscriptions()
    seen: list[int] = []
    cursor = None
    while True:
        page = await listing(ListSubscriptionsQuery(tenant.id, "ana", 2, cursor))
        seen += [e.number for e in page.items]
        assert len(seen) <= 20, "the walk does not end"
        if len(seen) == 2:
            await put(6)
            await put(7)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor

    assert seen == [5, 4, 3, 2, 1]


async def test_a_cursor_of_one_short_list_is_refused_by_a_list_of_another_shape(
    memory: Any,
) -> None:
    """A key's place is (microseconds, id), a plan's an id, a subscription's a number: each
    list refuses another's cursor as a cursor (422), never a 500 (TypeError) nor a page."""
    tenant = await add_tenant(memory)
    use_cases = wired(memory).use_cases()
    for n in range(2):
        await a_key(memory, tenant, at(n), f"k{n}")
        await memory.plans.put(tenant.id, Plan(f"p{n}"))
        await memory.funnels.put(tenant.id, replace(TWO_STAGES, name=f"f{n}"))
        await memory.subscriptions.put(tenant.id, Subscription("ana", "p0", at(900)), at(n))
    keys = (await use_cases.list_api_keys()(ListApiKeysQuery(tenant.id, 1))).next_cursor
    plans = (await use_cases.list_plans()(ListPlansQuery(tenant.id, 1))).next_cursor
    subscriptions = (
        await use_cases.list_subscriptions()(ListSubscriptionsQuery(tenant.id, "ana", 1))
    ).next_cursor
    assert keys and plans and subscriptions
    assert isinstance(decode_cursor(keys, 2)[0], int)

    wrong: list[Any] = [
        use_cases.list_plans()(ListPlansQuery(tenant.id, 1, keys)),
        use_cases.list_funnels()(ListFunnelsQuery(tenant.id, 1, keys)),
        use_cases.list_subscriptions()(ListSubscriptionsQuery(tenant.id, "ana", 1, keys)),
        use_cases.list_api_keys()(ListApiKeysQuery(tenant.id, 1, plans)),
        use_cases.list_subscriptions()(ListSubscriptionsQuery(tenant.id, "ana", 1, plans)),
        use_cases.list_plans()(ListPlansQuery(tenant.id, 1, subscriptions)),
        use_cases.list_funnels()(ListFunnelsQuery(tenant.id, 1, subscriptions)),
        # A key's place with its two parts swapped, and with a float for the instant.
        use_cases.list_api_keys()(
            ListApiKeysQuery(tenant.id, 1, encode_cursor(decode_cursor(keys, 2)[::-1]))
        ),
        use_cases.list_api_keys()(ListApiKeysQuery(tenant.id, 1, encode_cursor([1.5, "x"]))),
    ]
    for call in wrong:
        with pytest.raises(InvalidInput) as raised:
            await call
        assert refused_cursor(raised)
    # An empty cursor (`?cursor=`) asks for the first page, as on every list (it was refused
    # here and taken for the first page by the ledger and alerts until the review said so).
    first = await use_cases.list_plans()(ListPlansQuery(tenant.id, 1, ""))
    assert first == await use_cases.list_plans()(ListPlansQuery(tenant.id, 1))


# --- the ledger and alerts: Position cursors --------------------------------------------------


async def test_a_ledger_cursor_in_another_utc_offset_is_the_same_place_and_one_without_is_422(
    storage: Any, tenant: Tenant
) -> None:
    """Four grants at one instant (ties broken by id), two a page: the cursor given and the
    same place written in +09:00 give the same next page; an instant without an offset is
    refused naming the cursor, never read in the server's zone."""
    for n in range(4):
        await storage.ledger.grant(a_grant(tenant, 10 + n, f"key-{n}"))
    listing = wired(storage).use_cases().list_ledger()
    first = await listing(ListLedgerQuery(tenant.id, "user-1", 2))
    assert first.next_cursor is not None
    instant, id = decode_cursor(first.next_cursor, 2)
    seoul = datetime.fromisoformat(instant).astimezone(
        datetime.fromisoformat("2026-01-01T00:00:00+09:00").tzinfo
    )
    forged = encode_cursor([seoul.isoformat(), id])

    given = await listing(ListLedgerQuery(tenant.id, "user-1", 2, first.next_cursor))
    in_seoul = await listing(ListLedgerQuery(tenant.id, "user-1", 2, forged))
    naive = encode_cursor([datetime.fromisoformat(instant).replace(tzinfo=None).isoformat(), id])

    assert [e.id for e in given.items] == [e.id for e in in_seoul.items]
    assert len(given.items) == 2
    assert {e.id for e in first.items}.isdisjoint(e.id for e in given.items)
    with pytest.raises(InvalidInput) as raised:
        await listing(ListLedgerQuery(tenant.id, "user-1", 2, naive))
    assert refused_cursor(raised)


async def below_zero_at(storage: Any, tenant: Tenant, settled_at: datetime) -> None:
    session = await stored_session(storage, tenant, kind="counseling")
    await storage.sessions.close(
        tenant.id, session.id, Exit(at=at(3)), frozenset({"counseling"}), NOW, SHUT
    )
    await storage.ledger.settle(tenant.id, session.id, 0, 6, settled_at)


async def test_alerts_walk_newest_first_once_each_while_new_ones_come_and_cursors_of_any_offset(
    storage: Any, tenant: Tenant
) -> None:
    """Three alerts at one instant and one before, a page of one through the use case: an
    alert raised mid-walk (newer than the walk's place) is not listed and nothing twice; the
    place written in -05:00 gives the page the cursor gives."""
    for settled_at in (at(10), at(20), at(20), at(20)):
        await below_zero_at(storage, tenant, settled_at)
    listing = wired(storage).use_cases().list_alerts()
    whole = (await listing(ListAlertsQuery(tenant.id, 500))).items
    seen, cursor = [], None
    while True:
        page = await listing(ListAlertsQuery(tenant.id, 1, cursor))
        seen += page.items
        assert len(seen) <= 20, "the walk does not end"
        if len(seen) == 1:
            await below_zero_at(storage, tenant, at(30))
            instant, id = decode_cursor(page.next_cursor or "", 2)
            east = datetime.fromisoformat(instant).astimezone(
                datetime.fromisoformat("2026-01-01T00:00:00-05:00").tzinfo
            )
            forged = await listing(
                ListAlertsQuery(tenant.id, 1, encode_cursor([east.isoformat(), id]))
            )
            given = await listing(ListAlertsQuery(tenant.id, 1, page.next_cursor))
            assert forged == given
        if page.next_cursor is None:
            break
        cursor = page.next_cursor

    assert [a.id for a in seen] == [a.id for a in whole]
    assert [a.created_at for a in seen] == [at(20), at(20), at(20), at(10)]


# --- snapshots: source and time ---------------------------------------------------------------


def snap(source: str, minute: int, traffic: int) -> Snapshot:
    return Snapshot(source, at(minute), 35.0, 50.0, 2048.0, traffic, 10, 2)


async def snapshot_pages(
    storage: Any, tenant: Tenant, limit: int, start: datetime | None = None
) -> list[list[tuple[str, int, int]]]:
    listing = wired(storage).use_cases().list_snapshots()
    pages, cursor = [], None
    while True:
        page = await listing(ListSnapshotsQuery(tenant.id, None, start, None, limit, cursor))
        pages.append(
            [
                (m.snapshot.source, (m.snapshot.at - T0) // timedelta(minutes=1), m.traffic_bytes)
                for m in page.items
            ]
        )
        assert len(pages) <= 20, "the walk does not end"
        if page.next_cursor is None:
            return pages
        cursor = page.next_cursor


TWO_SOURCES = [
    snap("lk-1", 0, 100),
    snap("lk-1", 5, 300),
    snap("lk-1", 10, 600),
    snap("lk-2", 0, 10),
    snap("lk-2", 5, 40),
    snap("lk-2", 10, 100),
]


async def test_a_page_boundary_between_two_sources_with_a_window_start_keeps_each_delta(
    storage: Any, tenant: Tenant
) -> None:
    """Window from minute 5: the first page ends on lk-1's last snapshot; the next starts on
    lk-2's minute 5, whose traffic is measured from its minute 0 (before the window, never
    listed), not counted as a source's first (0). Pages of 1 measure alike."""
    await storage.snapshots.add(tenant.id, TWO_SOURCES)

    in_twos = await snapshot_pages(storage, tenant, 2, at(5))
    in_ones = await snapshot_pages(storage, tenant, 1, at(5))

    assert in_twos == [
        [("lk-1", 5, 200), ("lk-1", 10, 300)],
        [("lk-2", 5, 30), ("lk-2", 10, 60)],
    ]
    assert [m for p in in_ones for m in p] == [m for p in in_twos for m in p]


async def test_a_snapshots_cursor_before_the_window_of_an_absent_source_or_another_offset(
    storage: Any, tenant: Tenant
) -> None:
    """A cursor is a place, not a permission: one before the window's start still lists only
    the window; one of a source not stored starts at the next source; one written in +09:00 is
    the place it names; one without an offset is refused naming the cursor."""
    await storage.snapshots.add(tenant.id, TWO_SOURCES)
    listing = wired(storage).use_cases().list_snapshots()

    async def listed(cursor: str, start: datetime | None = None) -> list[tuple[str, datetime]]:
        page = await listing(ListSnapshotsQuery(tenant.id, None, start, None, 10, cursor))
        return [(m.snapshot.source, m.snapshot.at) for m in page.items]

    early = encode_cursor(["lk-1", at(-60).isoformat()])
    absent = encode_cursor(["lk-15", at(100).isoformat()])
    tokyo = at(5).astimezone(datetime.fromisoformat("2026-01-01T00:00:00+09:00").tzinfo)
    east = encode_cursor(["lk-2", tokyo.isoformat()])
    naive = encode_cursor(["lk-2", at(5).replace(tzinfo=None).isoformat()])

    assert await listed(early, at(5)) == [
        ("lk-1", at(5)),
        ("lk-1", at(10)),
        ("lk-2", at(5)),
        ("lk-2", at(10)),
    ]
    assert await listed(absent) == [("lk-2", at(m)) for m in (0, 5, 10)]
    assert await listed(east) == [("lk-2", at(10))]
    with pytest.raises(InvalidInput) as raised:
        await listed(naive)
    assert refused_cursor(raised)


async def test_snapshot_limits_default_to_50_take_1_and_500_and_refuse_0_and_501(
    storage: Any, tenant: Tenant
) -> None:
    """51 snapshots: no limit gives 50 and a cursor to the 51st; a limit of 500 all of them
    and no cursor; 0, -1 and 501 are refused naming the limit."""
    await storage.snapshots.add(tenant.id, [snap("lk-1", m, m * 10) for m in range(51)])
    listing = wired(storage).use_cases().list_snapshots()

    default = await listing(ListSnapshotsQuery(tenant.id))
    rest = await listing(ListSnapshotsQuery(tenant.id, cursor=default.next_cursor))
    most = await listing(ListSnapshotsQuery(tenant.id, limit=500))
    one = await listing(ListSnapshotsQuery(tenant.id, limit=1))

    assert len(default.items) == 50
    assert [m.snapshot.at for m in rest.items] == [at(50)]
    assert rest.items[0].traffic_bytes == 10  # from minute 49's, on the page before
    assert (len(most.items), most.next_cursor) == (51, None)
    assert len(one.items) == 1 and one.next_cursor is not None
    for limit in (0, -1, 501):
        with pytest.raises(InvalidInput) as raised:
            await listing(ListSnapshotsQuery(tenant.id, limit=limit))
        assert raised.value.field == "limit"


async def test_a_snapshot_cursor_past_a_source_of_200_characters_outside_the_bmp_is_taken(
    storage: Any, tenant: Tenant
) -> None:
    """The longest source the service stores (200 characters, each written by JSON as 12):
    its cursor is given and taken back (within MAX_CURSOR), and pages on to the next source."""
    long = "\N{GRINNING FACE}" * 200
    await storage.snapshots.add(tenant.id, [snap(long, 0, 1), snap(long, 5, 2), snap("z", 0, 3)])
    listing = wired(storage).use_cases().list_snapshots()

    first = await listing(ListSnapshotsQuery(tenant.id, limit=2))
    assert first.next_cursor is not None
    assert len(first.next_cursor) <= MAX_CURSOR
    rest = await listing(ListSnapshotsQuery(tenant.id, limit=2, cursor=first.next_cursor))

    sources = sorted([long, "z"])
    assert [m.snapshot.source for m in first.items + rest.items] == [
        sources[0],
        *([sources[0]] if sources[0] == long else []),
        sources[1],
        *([sources[1]] if sources[1] == long else []),
    ]


# --- funnel days kept with their end -----------------------------------------------------------

LONDON = Calendar("Europe/London")
SHORT_DAY = LONDON.bucket(Period.DAY, datetime(2026, 3, 29, 12, tzinfo=UTC))  # 23 hours
UTC_DAY = Calendar().bucket(Period.DAY, SHORT_DAY.start)  # same start, 24 hours
LORD_HOWE = "Australia/Lord_Howe"
# 5 April 2026 there is 24.5 hours long (02:00 back to 01:30), 4 October 23.5 (02:00 to 02:30).
LONG_HOWE = Calendar(LORD_HOWE).bucket(Period.DAY, datetime(2026, 4, 5, 3, tzinfo=UTC))
SHORT_HOWE = Calendar(LORD_HOWE).bucket(Period.DAY, datetime(2026, 10, 4, 3, tzinfo=UTC))


async def kiosk_customer(storage: Any, tenant: Tenant, name: str, started: datetime) -> None:
    minutes = (started - T0).total_seconds() / 60
    session = await stored_session(
        storage, tenant, minutes, kind="kiosk", subject_id=None, client_key=name
    )
    frame = Event(session.id, 1, "screen_enter", started, label="frame")
    await storage.events.append(tenant.id, [(0, frame)], NOW, OPEN)
    ended = Exit(started + timedelta(minutes=3), SessionStatus.COMPLETED)
    await storage.sessions.close(tenant.id, session.id, ended, frozenset(), NOW, SHUT)


async def stored_days(storage: Any, tenant: Tenant, *days: Bucket) -> dict[datetime, bool]:
    fingerprint = TWO_STAGES.fingerprint(tenant.settings.dimensions)
    found: dict[datetime, bool] = await storage.funnel_days.stored(
        tenant.id, TWO_STAGES.name, fingerprint, list(days)
    )
    return found


async def test_a_day_rolled_up_in_london_is_replaced_by_the_utc_day_when_rolled_up_again(
    storage: Any, tenant: Tenant
) -> None:
    """Rolled up in London (29 March: 23 hours), the zone changed to UTC, rolled up again: the
    UTC day (24 hours, same start) is stored final over its own bounds, the London one is gone
    (one day per start), and the report read from it holds both sessions."""
    tenant = await storage.tenants.change_settings(
        tenant.id, lambda s: replace(s, time_zone="Europe/London")
    )
    await storage.funnels.put(tenant.id, TWO_STAGES)
    await kiosk_customer(storage, tenant, "morning", SHORT_DAY.start + timedelta(hours=10))
    await kiosk_customer(storage, tenant, "late", SHORT_DAY.end + timedelta(minutes=30))
    now = SHORT_DAY.start + timedelta(days=4)
    await roll_up(storage, tenant, now, SHORT_DAY.start - timedelta(days=1))
    assert await stored_days(storage, tenant, SHORT_DAY) == {SHORT_DAY.start: True}
    assert await stored_days(storage, tenant, UTC_DAY) == {}

    tenant = await storage.tenants.change_settings(tenant.id, lambda s: replace(s, time_zone="UTC"))
    await roll_up(storage, tenant, now, SHORT_DAY.start - timedelta(days=1))

    assert await stored_days(storage, tenant, UTC_DAY) == {UTC_DAY.start: True}
    assert await stored_days(storage, tenant, SHORT_DAY) == {}
    (whole,) = await storage.funnel_days.wholes(tenant.id, "photo", [UTC_DAY.start])
    assert sum(whole.statuses.values()) == 2
    figures = await funnel_report(storage, tenant, UTC_DAY.start, UTC_DAY.end, now)
    assert reached(figures) == (2, [2, 0], {"completed": 2})


async def test_lord_howe_days_of_24_and_a_half_and_23_and_a_half_hours_roll_up_over_their_ends(
    storage: Any, tenant: Tenant
) -> None:
    """Lord Howe's clocks move by 30 minutes: each DST day is stored final over its own end,
    and holds the customer of its last half hour (who a 24-hour day would give the next)."""
    assert LONG_HOWE.end - LONG_HOWE.start == timedelta(hours=24, minutes=30)
    assert SHORT_HOWE.end - SHORT_HOWE.start == timedelta(hours=23, minutes=30)
    tenant = await storage.tenants.change_settings(
        tenant.id, lambda s: replace(s, time_zone=LORD_HOWE)
    )
    await storage.funnels.put(tenant.id, TWO_STAGES)
    for n, day in enumerate((LONG_HOWE, SHORT_HOWE)):
        await kiosk_customer(storage, tenant, f"first-{n}", day.start + timedelta(minutes=5))
        await kiosk_customer(storage, tenant, f"last-{n}", day.end - timedelta(minutes=10))
    days = (LONG_HOWE, SHORT_HOWE)
    from_events = [
        reached(await funnel_report(storage, tenant, d.start, d.end, d.end + timedelta(days=3)))
        for d in days
    ]

    for day in days[::-1]:  # a run for each, the later first (a run goes on from the last)
        await roll_up(storage, tenant, day.end + timedelta(days=3), day.start - timedelta(days=1))

    assert await stored_days(storage, tenant, *days) == {d.start: True for d in days}
    wholes = [(await storage.funnel_days.wholes(tenant.id, "photo", [d.start]))[0] for d in days]
    assert [sum(w.statuses.values()) for w in wholes] == [2, 2]
    from_rollups = [
        reached(await funnel_report(storage, tenant, d.start, d.end, d.end + timedelta(days=3)))
        for d in days
    ]
    assert from_rollups == from_events == [(2, [2, 0], {"completed": 2})] * 2


def a_day(start: datetime, end: datetime | None) -> FunnelDay:
    tally = FunnelTally(2, [3, 1], [2, 0], [Counter({1500: 1})], Counter({"completed": 3}))
    return FunnelDay(
        start,
        TWO_STAGES.fingerprint(()),
        True,
        tally,
        [FunnelRow("booth-1", (), tally)],
        (),
        end,
    )


async def test_an_old_day_without_its_end_null_or_missing_is_still_read_for_its_start(
    storage: Any, storage_url: str, tenant: Tenant
) -> None:
    """A day stored before 0034 has no end: NULL on SQL, no field at all on MongoDB, None in
    memory. It is taken for the day its start begins, 23 or 24 hours long alike."""
    await storage.funnels.put(tenant.id, TWO_STAGES)
    await storage.funnel_days.replace(tenant.id, "photo", a_day(SHORT_DAY.start, None))
    if storage_url.startswith("mongodb"):
        client = connect(storage_url)
        try:
            days = client.get_default_database()["funnel_days"]
            changed = await days.update_many({}, {"$unset": {"day_end": ""}})
            assert changed.modified_count == 1
            assert "day_end" not in (await days.find_one({}) or {"day_end": 1})
        finally:
            await client.close()
    elif not storage_url.startswith("memory"):
        async with storage.engine.begin() as conn:
            await conn.execute(text("UPDATE funnel_days SET day_end = NULL"))

    assert await stored_days(storage, tenant, SHORT_DAY) == {SHORT_DAY.start: True}
    assert await stored_days(storage, tenant, UTC_DAY) == {UTC_DAY.start: True}
    assert await storage.funnel_days.wholes(tenant.id, "photo", [SHORT_DAY.start]) == [
        a_day(SHORT_DAY.start, None).whole
    ]


async def days_to_move(source: Any, name: str) -> Tenant:
    """A tenant with a funnel and four days of 23, 23.5, 24.5 and 25 hours and one kept
    before 0034 (no end)."""
    tenant = await add_tenant(source, name)
    await source.funnels.put(tenant.id, TWO_STAGES)
    for day in (SHORT_DAY, SHORT_HOWE, LONG_HOWE, NEW_YORK_LONG):
        await source.funnel_days.replace(tenant.id, "photo", a_day(day.start, day.end))
    await source.funnel_days.replace(tenant.id, "photo", a_day(LEGACY.start, None))
    return tenant


NEW_YORK_LONG = Calendar("America/New_York").bucket(
    Period.DAY, datetime(2026, 11, 1, 12, tzinfo=UTC)
)  # 25 hours
LEGACY = Calendar().bucket(Period.DAY, datetime(2026, 6, 1, tzinfo=UTC))


async def assert_days_moved(target: Any, tenant: Tenant) -> None:
    days = (SHORT_DAY, SHORT_HOWE, LONG_HOWE, NEW_YORK_LONG)
    assert await stored_days(target, tenant, *days, LEGACY) == {
        **{d.start: True for d in days},
        LEGACY.start: True,
    }
    # Each end came with it: the day of another length from the same start is another.
    others = [replace(d, end=d.start + timedelta(days=1)) for d in days]
    assert await stored_days(target, tenant, *others) == {}
    # And the one kept without an end is still taken for a day of any length from its start.
    assert await stored_days(target, tenant, replace(LEGACY, end=LEGACY.end - HALF_HOUR)) == {
        LEGACY.start: True
    }


HALF_HOUR = timedelta(minutes=30)


async def export_lines(storage: Any, name: str) -> list[str]:
    exported = await wired(storage).use_cases().export_tenant()(ExportTenantQuery(name))
    return [line async for line in exported.lines]


async def test_days_of_23_to_25_hours_move_from_this_store_to_memory_with_their_ends(
    storage: Any, memory: Any
) -> None:
    tenant = await days_to_move(storage, "moving-out")
    lines = await export_lines(storage, "moving-out")
    ends = [
        json.loads(line)["day"].get("end")
        for line in lines[1:]
        if json.loads(line)["record"] == "funnel_day"
    ]
    assert ends.count(None) == 1 and len(ends) == 5

    await import_into(memory, lines)

    await assert_days_moved(memory, tenant)


async def test_days_of_23_to_25_hours_move_from_memory_to_this_store_with_their_ends(
    storage: Any, memory: Any
) -> None:
    """Into every store, through its import (checks included: 23 to 25 hours are days)."""
    tenant = await days_to_move(memory, "moving-in")
    lines = await export_lines(memory, "moving-in")

    await import_into(storage, lines)

    await assert_days_moved(storage, tenant)
    # Exported again from here, the ends are those that came in.
    again = await export_lines(storage, "moving-in")
    assert [json.loads(x) for x in again if '"funnel_day"' in x] == [
        json.loads(x) for x in lines if '"funnel_day"' in x
    ]


@pytest.mark.parametrize(
    ("length", "taken"),
    [
        (timedelta(hours=23), True),
        (timedelta(hours=25), True),
        (timedelta(days=2), True),
        (timedelta(days=2, minutes=1), False),
        (timedelta(minutes=-30), False),
    ],
    ids=["23h", "25h", "2-days", "2-days-and-a-minute", "before-its-start"],
)
async def test_an_imported_days_end_is_taken_from_23_hours_to_2_days_and_refused_beyond(
    memory: Any, length: timedelta, taken: bool
) -> None:
    tenant = await add_tenant(memory, "checked")
    await memory.funnels.put(tenant.id, TWO_STAGES)
    await memory.funnel_days.replace(tenant.id, "photo", a_day(UTC_DAY.start, UTC_DAY.end))
    lines = await export_lines(memory, "checked")
    number = next(n for n, x in enumerate(lines) if json.loads(x)["record"] == "funnel_day")
    record = json.loads(lines[number])
    record["day"]["end"] = {"$time": (UTC_DAY.start + length).isoformat()}
    lines[number] = json.dumps(record)
    target = open_storage("memory://")

    if taken:
        await import_into(target, lines)
        bucket = replace(UTC_DAY, end=UTC_DAY.start + length)
        assert await stored_days(target, tenant, bucket) == {UTC_DAY.start: True}
    else:
        with pytest.raises(InvalidInput, match=f"line {number + 1}"):
            await import_into(target, lines)


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


async def test_migration_0034_on_a_database_holding_funnel_days_keeps_them_as_days_of_old(
    storage: Any, storage_url: str, tenant: Tenant
) -> None:
    """SQLite and PostgreSQL: a database at 0033 holding funnel days (written before the column
    existed) upgraded to the head keeps each day, final, read for the day its start begins."""
    if not storage_url.startswith(("sqlite", "postgresql")):
        pytest.skip("migrations are the SQL stores'")
    await storage.funnels.put(tenant.id, TWO_STAGES)
    async with storage.engine.begin() as conn:
        await conn.run_sync(lambda c: command.downgrade(_config(c), "0033"))
    try:
        async with storage.engine.begin() as conn:
            columns = await conn.run_sync(
                lambda c: [col["name"] for col in inspect(c).get_columns("funnel_days")]
            )
            assert "day_end" not in columns
            old = a_day(SHORT_DAY.start, None)
            await conn.execute(
                funnel_days.insert().values(
                    tenant_id=tenant.id,
                    funnel="photo",
                    day_start=old.start,
                    fingerprint=old.fingerprint,
                    final=True,
                    tally=old.whole.document(),
                    dimensions=[],
                )
            )
    finally:  # the database goes to the next test
        await storage.migrate()

    assert await stored_days(storage, tenant, SHORT_DAY) == {SHORT_DAY.start: True}
    assert await stored_days(storage, tenant, UTC_DAY) == {UTC_DAY.start: True}
    assert await storage.funnel_days.wholes(tenant.id, "photo", [SHORT_DAY.start]) == [
        a_day(SHORT_DAY.start, None).whole
    ]
