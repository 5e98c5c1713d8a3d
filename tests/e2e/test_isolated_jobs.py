"""A real server running its jobs every second: one tenant whose data no rollup can store is
logged, and every other tenant's usage is still rolled up."""

import time
from pathlib import Path

import pytest

from tests.e2e.serving import serving, tenant_with_keys
from tests.poisons import overflowing_rollups

pytestmark = pytest.mark.slow

WITHIN_SECONDS = 10
JOBS_EVERY_SECOND = {f"{job}_interval_seconds": "1" for job in ("reaper", "rollup", "retention")}


@pytest.mark.parametrize("storage_url", ["sqlite", "postgresql"], indirect=True)
def test_a_tenant_no_rollup_can_store_is_logged_and_stalls_no_other(
    storage_url: str, tmp_path: Path
) -> None:
    keys = tenant_with_keys(storage_url, "bootcamp", ("ingest", "admin"), others=("acme",))
    ingest, admin = keys["ingest"], keys["admin"]
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
