"""POST /v1/snapshots (one or a batch) and GET /v1/snapshots: admins record media servers'
resources and read the traffic each period used."""

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.app_client import Api
from tests.http.envelope import assert_error

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)


def snapshot(minute: int, traffic: int, **fields: Any) -> dict[str, Any]:
    return {
        "source": "lk-1",
        "at": (T0 + timedelta(minutes=minute)).isoformat(),
        "cpu_percent": 41.5,
        "memory_percent": 62.0,
        "memory_mb": 3072.5,
        "traffic_bytes_total": traffic,
        "concurrent_users": 40,
        "active_rooms": 2,
        **fields,
    }


def test_snapshots_are_recorded_once_and_read_back_with_their_traffic(api: Api) -> None:
    one = api.client.post("/v1/snapshots", json=snapshot(0, 5_000), headers=api.admin)
    batch = api.client.post(
        "/v1/snapshots/batch",
        json={"snapshots": [snapshot(0, 5_000), snapshot(5, 9_000), snapshot(10, 1_000)]},
        headers=api.admin,
    )

    assert one.json() == {"inserted": 1, "duplicates": 0}
    assert batch.json() == {"inserted": 2, "duplicates": 1}
    listed = api.client.get("/v1/snapshots", params={"source": "lk-1"}, headers=api.admin)
    assert [s["traffic_bytes"] for s in listed.json()["items"]] == [0, 4_000, 1_000]
    assert listed.json()["items"][1]["memory_mb"] == 3072.5


def test_snapshots_are_for_admins_and_must_make_sense(api: Api) -> None:
    ingest = api.client.post("/v1/snapshots", json=snapshot(0, 1), headers=api.app)
    over = api.client.post("/v1/snapshots", json=snapshot(0, 1, cpu_percent=140), headers=api.admin)
    wrong = api.client.post(
        "/v1/snapshots", json=snapshot(0, 1, traffic_bytes_total="lots"), headers=api.admin
    )

    assert_error(ingest, 403, "forbidden")
    assert_error(over, 422, "validation_error")
    assert_error(wrong, 422, "validation_error")


def test_how_long_snapshots_and_events_are_kept_is_a_setting(api: Api) -> None:
    default = api.client.get("/v1/settings", headers=api.admin).json()
    changed = api.client.put(
        "/v1/settings", json={"snapshot_retention_days": 30}, headers=api.admin
    )
    never = api.client.put("/v1/settings", json={"event_retention_days": 0}, headers=api.admin)

    assert (default["snapshot_retention_days"], default["event_retention_days"]) == (7, 90)
    assert changed.json()["snapshot_retention_days"] == 30
    assert changed.json()["event_retention_days"] == 90
    assert_error(never, 422, "validation_error")
