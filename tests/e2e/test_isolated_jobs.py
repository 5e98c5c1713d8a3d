"""A real server running its jobs every second: one tenant whose data no rollup can store is
logged, and every other tenant's usage is still rolled up."""

import time
from pathlib import Path

import pytest

from application.tenants.create_api_key import CreateApiKeyCommand
from application.tenants.create_tenant import CreateTenantCommand
from entrypoints.container import build_container
from entrypoints.settings import Settings
from tests.conftest import run_async
from tests.e2e.serving import serving
from tests.poisons import overflowing_rollups

pytestmark = pytest.mark.slow

WITHIN_SECONDS = 10
JOBS_EVERY_SECOND = {f"{job}_interval_seconds": "1" for job in ("reaper", "rollup", "retention")}


def tenants_and_keys(storage_url: str) -> tuple[str, str]:
    """acme and bootcamp; bootcamp's ingest and admin keys."""

    async def create() -> tuple[str, str]:
        container = build_container(Settings(storage_url=storage_url))
        try:
            for name in ("acme", "bootcamp"):
                await container.use_cases.create_tenant()(CreateTenantCommand(name))
            create_api_key = container.use_cases.create_api_key()
            ingest = await create_api_key(CreateApiKeyCommand("bootcamp", "ingest"))
            admin = await create_api_key(CreateApiKeyCommand("bootcamp", "admin"))
            return ingest.secret, admin.secret
        finally:
            await container.storage.backend().close()

    return run_async(create)


@pytest.mark.parametrize("storage_url", ["sqlite", "postgresql"], indirect=True)
def test_a_tenant_no_rollup_can_store_is_logged_and_stalls_no_other(
    storage_url: str, tmp_path: Path
) -> None:
    ingest, admin = tenants_and_keys(storage_url)
    overflowing_rollups(storage_url, "acme")  # served first: tenants go by name

    with serving(tmp_path, storage_url=storage_url, **JOBS_EVERY_SECOND) as server:
        with server.client(ingest) as http:
            started = http.post(
                "/v1/sessions", json={"kind": "kiosk", "resource_id": "booth-1", "subject_id": "k"}
            )
            assert started.status_code == 201, started.text
        deadline = time.monotonic() + WITHIN_SECONDS
        with server.client(admin) as http:
            while True:
                hours = http.get("/v1/reports/usage").json()["items"]
                logged = "rollups: tenant acme failed" in server.log.read_text()
                rolled_up = sum(h["sessions_started"] for h in hours) == 1
                if (logged and rolled_up) or time.monotonic() > deadline:
                    break
                time.sleep(0.2)

    assert rolled_up, hours
    assert logged
