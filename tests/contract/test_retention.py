"""Retention deletes the oldest snapshots and events in bounded batches, on every store."""

from typing import Any

import pytest

from application.ports import Window
from domain.events import Event
from domain.snapshots import Snapshot
from domain.tenants import Tenant
from tests.contract.builders import NOW, OPEN, add_tenant, at, stored_session

pytestmark = pytest.mark.anyio


async def test_the_oldest_snapshots_go_a_batch_at_a_time_and_the_rest_stay(
    storage: Any, tenant: Tenant
) -> None:
    other = await add_tenant(storage, "globex")
    for owner in (tenant, other):
        await storage.snapshots.add(
            owner.id, [Snapshot("lk-1", at(m), 1.0, 1.0, 1.0, m, 1, 1) for m in range(5)]
        )

    first = await storage.retention.delete_snapshots(tenant.id, at(3), 2)
    second = await storage.retention.delete_snapshots(tenant.id, at(3), 2)
    third = await storage.retention.delete_snapshots(tenant.id, at(3), 2)

    assert (first, second, third) == (2, 1, 0)
    kept = await storage.snapshots.find(tenant.id, None, Window(), 10)
    assert [m.snapshot.at for m in kept] == [at(3), at(4)]
    assert len(await storage.snapshots.find(other.id, None, Window(), 10)) == 5


async def test_old_events_go_and_their_session_keeps_what_they_added(
    storage: Any, tenant: Tenant
) -> None:
    session = await stored_session(storage, tenant)
    await storage.events.append(
        tenant.id,
        [(n, Event(session.id, n + 1, "tick", at(n), meters={"ticks": 1})) for n in range(4)],
        NOW,
        OPEN,
    )

    deleted = await storage.retention.delete_events(tenant.id, at(2), 100)

    assert deleted == 2
    assert [e.sequence_no for e in await storage.events.find(tenant.id, session.id, 10)] == [3, 4]
    kept = await storage.sessions.get(tenant.id, session.id)
    assert kept.usage == {"ticks": 4} and kept.event_count == 4


async def test_handled_webhook_ids_are_forgotten_oldest_first(storage: Any, tenant: Tenant) -> None:
    other = await add_tenant(storage, "globex")
    for owner in (tenant, other):
        for minute in range(3):
            await storage.webhooks.record(owner.id, f"EV_{minute}", at(minute))

    first = await storage.retention.forget_webhooks(tenant.id, at(2), 1)
    second = await storage.retention.forget_webhooks(tenant.id, at(2), 1)
    third = await storage.retention.forget_webhooks(tenant.id, at(2), 1)

    assert (first, second, third) == (1, 1, 0)
    assert [await storage.webhooks.seen(tenant.id, f"EV_{m}") for m in range(3)] == [
        False,
        False,
        True,
    ]
    assert await storage.webhooks.seen(other.id, "EV_0")


async def test_finished_rooms_are_forgotten_with_the_webhook_ids_oldest_first(
    storage: Any, tenant: Tenant
) -> None:
    await storage.webhooks.record(tenant.id, "EV_0", at(0))
    for minute in range(3):
        await storage.finished_rooms.finish(tenant.id, f"RM_{minute}", at(minute))

    first = await storage.retention.forget_webhooks(tenant.id, at(2), 2)
    second = await storage.retention.forget_webhooks(tenant.id, at(2), 2)

    assert (first, second) == (2, 1)
    assert not await storage.webhooks.seen(tenant.id, "EV_0")
    remembered = [await storage.finished_rooms.finished_at(tenant.id, f"RM_{m}") for m in range(3)]
    assert remembered == [None, None, at(2)]
