"""Gaps a mutation run of the resource registry, the refused starts and the rollup leases found
(`make mutants` on `ResourceRegistry.register`, `RefusedStarts.record` and
`RollupLeases.acquire` / `renew` / `_update`, against the contract tests of those areas): what
each step writes, read back through the ports."""

from datetime import date
from typing import Any

import pytest
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from adapters.mongodb.documents import Document
from adapters.mongodb.storage import MongoStorage
from domain.plans import Registration
from domain.refusals import Refusal, RefusedStart
from domain.tenants import Tenant
from domain.trial_report import RefusalTally
from tests.contract.builders import add_tenant, at, quota

pytestmark = pytest.mark.anyio
on_mongodb = pytest.mark.parametrize("storage_url", ["mongodb"], indirect=True)

DAY = date(2026, 11, 24)


async def registrations(storage: Any, tenant: Tenant) -> list[Registration]:
    records = [r async for r in storage.archive.export(tenant.id)]
    return sorted(
        (r for r in records if isinstance(r, Registration)),
        key=lambda r: (r.subject_id, r.resource_id),
    )


async def test_a_registration_keeps_its_subject_resource_kind_and_instant(
    storage: Any, tenant: Tenant
) -> None:
    assert await storage.resources.register(tenant.id, "user-1", "pdf-1", "pdf", at(0), None)
    assert await storage.resources.register(
        tenant.id, "user-2", "deck-7", "slides", at(3), quota(5, at(3))
    )
    # Registered already: the first registration stays as it was.
    assert not await storage.resources.register(
        tenant.id, "user-1", "pdf-1", "scan", at(9), quota(5, at(9))
    )

    assert await registrations(storage, tenant) == [
        Registration("user-1", "pdf-1", "pdf", at(0)),
        Registration("user-2", "deck-7", "slides", at(3)),
    ]


async def test_refusals_of_one_subject_day_and_reason_in_two_kinds_both_count(
    storage: Any, tenant: Tenant
) -> None:
    for kind in ("practice", "mock", "practice"):
        await storage.refused_starts.record(
            tenant.id, RefusedStart("ana", kind, Refusal.TRIAL_EXHAUSTED, DAY)
        )

    tally = await storage.refused_starts.tally(tenant.id, DAY, DAY)

    assert tally == RefusalTally({Refusal.TRIAL_EXHAUSTED: 3}, subjects_exhausted=1)


class LosesTheFirstInsert:
    """The refused starts' collection, where another first refusal of the same counter inserts
    it just before this one's upsert, which then fails on the unique index."""

    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self._collection = collection
        self.lost = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._collection, name)

    async def update_one(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("upsert") and not self.lost:
            self.lost = True
            await self._collection.update_one(*args, **kwargs)  # the other refusal's insert
            raise DuplicateKeyError("E11000 duplicate key error (ux_refused_starts)")
        return await self._collection.update_one(*args, **kwargs)


@on_mongodb
async def test_a_first_refusal_whose_insert_lost_to_another_adds_to_the_counter_it_made(
    mongodb: MongoStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = await add_tenant(mongodb)
    recorder = mongodb.refused_starts
    losing = LosesTheFirstInsert(recorder._refused)
    monkeypatch.setattr(recorder, "_refused", losing)

    await recorder.record(tenant.id, RefusedStart("ana", "practice", Refusal.QUOTA_EXCEEDED, DAY))

    assert losing.lost
    tally = await recorder.tally(tenant.id, DAY, DAY)
    assert tally == RefusalTally({Refusal.QUOTA_EXCEEDED: 2})


async def test_a_rewind_taken_by_a_runner_that_died_is_where_the_next_run_resumes(
    storage: Any, tenant: Tenant
) -> None:
    leases = storage.rollup_leases
    assert await leases.acquire(tenant.id, "first", at(0), at(10)) is not None
    await leases.release(tenant.id, "first", at(600), tenant.settings.rollup_cut)
    await leases.rewind(tenant.id, at(120))

    died = await leases.acquire(tenant.id, "died", at(601), at(610))
    # It never releases: the next runner takes over once its lease runs out, from the rewind.
    after = await leases.acquire(tenant.id, "next", at(610), at(620))

    assert died is not None and died.resume_from == at(120)
    assert after is not None and (after.resume_from, after.cut) == (at(120), died.cut)
