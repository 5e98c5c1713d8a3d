"""Gaps found by mutation testing of MongoDB's ledger turns (adapters.mongodb.ledger_turns:
LedgerTurns.__init__ and _take; `make mutants`; `held` is a decorated generator, which mutmut
leaves alone): each test here failed with one surviving mutant applied. A settlement or an
erasure holds its subject's turn through a document of `ledger_turns`, with a lease; the tests
take turns through LedgerTurns itself, or write a turn as another process would, so they run on
MongoDB only."""

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapters.mongodb.ledger_turns import LEASE, LedgerTurns
from domain.tenants import Tenant

pytestmark = pytest.mark.anyio
on_mongodb = pytest.mark.parametrize("storage_url", ["mongodb"], indirect=True)


@pytest.fixture
def local_time_zone(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    """Sets the process's local time zone (TZ) for the test, and puts the old one back."""

    def set_to(zone: str) -> None:
        monkeypatch.setenv("TZ", zone)
        time.tzset()

    yield set_to
    monkeypatch.undo()
    time.tzset()


@on_mongodb
async def test_a_turn_another_process_holds_is_not_taken_whatever_the_local_time_zone(
    storage: Any, tenant: Tenant, local_time_zone: Callable[[str], None]
) -> None:
    """A turn is held until an instant: another process's, held for a minute more, is not taken
    by a host whose local clock reads ahead of UTC, and the lease of a turn taken by a host
    whose local clock reads behind UTC runs from now (xǁLedgerTurnsǁ_take__mutmut_3 read the
    local wall clock, datetime.now(None), which the driver stores as if it were UTC: it took the
    other's turn at UTC+5, and its own lease had run out hours before at UTC-5)."""
    turns = storage.db["ledger_turns"]
    another = {"tenant_id": tenant.id, "subject_id": "user-1", "holder": "another process"}
    await turns.insert_one({**another, "held_until": datetime.now(UTC) + timedelta(minutes=1)})

    local_time_zone("Etc/GMT-5")  # UTC+5 (POSIX signs are the other way round)
    async with LedgerTurns(storage.db).held(tenant.id, {"user-1"}) as taken_ahead:
        assert taken_ahead == set()
    local_time_zone("Etc/GMT+5")  # UTC-5
    async with LedgerTurns(storage.db).held(tenant.id, {"user-2"}) as taken_behind:
        assert taken_behind == {"user-2"}
        turn = await turns.find_one({"tenant_id": tenant.id, "subject_id": "user-2"})
        assert turn is not None
        assert datetime.now(UTC) < turn["held_until"] <= datetime.now(UTC) + LEASE

    assert await turns.count_documents({}) == 1  # another's turn, still held
