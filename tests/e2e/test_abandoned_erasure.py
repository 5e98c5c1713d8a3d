"""A real server with its jobs on: an erasure that failed halfway (its sessions under the
pseudonym, the ledger still under the person's id) and that nobody asks for again is finished
by the server's retention job once it is abandoned, and the charge of a session that ends
meanwhile is drawn from the person's credits, under the pseudonym."""

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from dependency_injector import providers

from application.data_rights.erase_subject import ABANDONED_AFTER, EraseSubjectCommand
from application.storage import StorageError
from entrypoints.container import build_container
from entrypoints.settings import Settings
from tests.conftest import run_async
from tests.contract.races import FailsToMove
from tests.e2e.serving import serving, tenant_with_keys
from tests.fakes import FakeClock

pytestmark = pytest.mark.slow

JOBS_EVERY_SECOND = {f"{job}_interval_seconds": "1" for job in ("reaper", "retention")}
SETTLED_WITHIN_SECONDS = 20
Json = dict[str, Any]


def erasure_that_failed_halfway(storage_url: str, began: datetime) -> None:
    """Ana's erasure, begun at `began`: her sessions took the pseudonym, then the move of her
    ledger failed (the connection dropped), and no one retried it."""

    async def fail() -> None:
        container = build_container(Settings(storage_url=storage_url))
        try:
            storage = container.storage.backend()
            container.storage.erasure.override(providers.Object(FailsToMove(storage.erasure)))
            container.outside.clock.override(providers.Object(FakeClock(began)))
            tenant = await storage.tenants.get_by_name("clinic")
            assert tenant is not None
            with pytest.raises((ConnectionError, StorageError)):
                await container.use_cases.erase_subject()(EraseSubjectCommand(tenant, "ana"))
        finally:
            await container.storage.backend().close()

    run_async(fail)


def ok(response: httpx.Response, status: int = 200) -> Json:
    assert response.status_code == status, response.text
    answer: Json = response.json()
    return answer


@pytest.mark.parametrize("storage_url", ["sqlite", "postgresql", "mongodb"], indirect=True)
def test_an_erasure_nobody_retried_is_finished_by_the_servers_retention(
    storage_url: str, tmp_path: Path
) -> None:
    keys = tenant_with_keys(storage_url, "clinic", ("app", "admin"))
    with (
        serving(tmp_path, storage_url=storage_url, **JOBS_EVERY_SECOND) as server,
        server.client(keys["admin"]) as admin,
        server.client(keys["app"]) as app,
    ):
        ok(admin.put("/v1/rates/counseling", json={"credits_per_minute": 2}))
        grant = {"amount": 100, "reason": "plan", "idempotency_key": "ana-plan"}
        ok(admin.post("/v1/accounts/ana/credits/grants", json=grant), 201)
        body = {"kind": "counseling", "resource_id": "room-1", "subject_id": "ana"}
        session = ok(app.post("/v1/sessions", json=body), 201)

        # Begun long enough ago to be taken as abandoned (retention runs every second).
        erasure_that_failed_halfway(storage_url, datetime.now(UTC) - ABANDONED_AFTER * 1.1)
        exited = ok(app.post(f"/v1/sessions/{session['id']}/exit", json={}))

        deadline = time.monotonic() + SETTLED_WITHIN_SECONDS
        while True:
            stored = ok(admin.get(f"/v1/sessions/{session['id']}"))
            pseudonym = stored["subject_id"]
            theirs = ok(admin.get(f"/v1/accounts/{pseudonym}/credits"))
            # MongoDB claims the charge on the session, then writes its ledger entry (a round
            # trip later): the balance is read until it holds what the session says.
            charged = stored["charge_state"] == "charged"
            if (charged and theirs["balance"] < 100) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        hers = ok(admin.get("/v1/accounts/ana/credits"))
        alerts = ok(admin.get("/v1/alerts"))

    assert pseudonym.startswith("erased:") and exited["subject_id"] == pseudonym
    assert stored["charge_state"] == "charged", stored
    credits = stored["charge"]["credits"]
    assert credits > 0
    assert stored["charge"] == {"credits": credits, "balance_after": 100 - credits, "warning": None}
    assert (theirs["balance"], theirs["granted"]) == (100 - credits, 100)
    assert hers["balance"] == 0
    assert alerts["items"] == []
