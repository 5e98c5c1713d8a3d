"""Resource snapshots and the traffic each period used, on every store."""

from datetime import timedelta
from typing import Any

import pytest

from application.ports import Window
from application.snapshots.ports import SnapshotPlace
from domain.snapshots import Snapshot
from domain.tenants import Tenant
from tests.contract.builders import at

pytestmark = pytest.mark.anyio


def snapshot(minute: int, traffic: int, source: str = "lk-1", users: int = 10) -> Snapshot:
    return Snapshot(source, at(minute), 35.0, 50.0, 2048.0, traffic, users, 2)


async def deltas(storage: Any, tenant: Tenant, **where: Any) -> list[tuple[str, int, int]]:
    found = await storage.snapshots.find(
        tenant.id, where.get("source"), where.get("window", Window()), 100
    )
    return [
        (m.snapshot.source, (m.snapshot.at - at(0)) // timedelta(minutes=1), m.traffic_bytes)
        for m in found
    ]


async def test_traffic_is_the_counters_delta_and_a_counter_that_went_down_was_reset(
    storage: Any, tenant: Tenant
) -> None:
    stored = await storage.snapshots.add(
        tenant.id,
        [snapshot(0, 1_000), snapshot(5, 4_000), snapshot(10, 500), snapshot(15, 2_500)],
    )

    assert stored == 4
    assert await deltas(storage, tenant) == [
        ("lk-1", 0, 0),
        ("lk-1", 5, 3_000),
        ("lk-1", 10, 500),  # reset: the delta is the new value
        ("lk-1", 15, 2_000),
    ]


async def test_a_late_snapshot_corrects_the_deltas_around_it_and_a_resent_one_is_ignored(
    storage: Any, tenant: Tenant
) -> None:
    await storage.snapshots.add(tenant.id, [snapshot(0, 0), snapshot(10, 10_000)])

    again = await storage.snapshots.add(tenant.id, [snapshot(5, 4_000), snapshot(10, 10_000)])

    assert again == 1
    assert [d for _, _, d in await deltas(storage, tenant)] == [0, 4_000, 6_000]


async def test_sources_are_measured_apart_and_a_window_still_sees_the_snapshot_before_it(
    storage: Any, tenant: Tenant
) -> None:
    await storage.snapshots.add(
        tenant.id,
        [snapshot(0, 100), snapshot(10, 700), snapshot(0, 50, "lk-2"), snapshot(10, 90, "lk-2")],
    )

    in_window = await deltas(storage, tenant, window=Window(at(5), at(60)))
    one_source = await deltas(storage, tenant, source="lk-2")

    assert in_window == [("lk-1", 10, 600), ("lk-2", 10, 40)]
    assert one_source == [("lk-2", 0, 0), ("lk-2", 10, 40)]


async def test_pages_of_snapshots_keep_the_traffic_since_a_snapshot_on_the_page_before(
    storage: Any, tenant: Tenant
) -> None:
    """Read two at a time from after the last one read: each page's first snapshot still
    measures its traffic from its source's previous one, listed on the page before."""
    await storage.snapshots.add(
        tenant.id,
        [snapshot(0, 100), snapshot(5, 300), snapshot(10, 600)]
        + [snapshot(m, t, source="lk-2") for m, t in ((0, 10), (5, 40))],
    )
    whole = await storage.snapshots.find(tenant.id, None, Window(), 100)

    pages, after = [], None
    while page := await storage.snapshots.find(tenant.id, None, Window(), 2, after):
        pages.append(page)
        after = SnapshotPlace(page[-1].snapshot.source, page[-1].snapshot.at)

    assert [len(p) for p in pages] == [2, 2, 1]
    assert [m for p in pages for m in p] == whole
    assert [m.traffic_bytes for m in whole] == [0, 200, 300, 0, 30]
