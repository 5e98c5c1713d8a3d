"""A device's key scoped to its own resources: it writes and reads by id only their sessions,
events and telemetry, so a key lifted from one kiosk cannot touch another's."""

from typing import Any

from tests.app_client import Api
from tests.http.envelope import assert_error, invalid_fields
from tests.http.test_telemetry_api import a_metric, a_sale, an_error

KIOSK = {"kind": "kiosk", "subject_id": None, "client_key": "visitor"}


def scoped_key(api: Api, *resources: str) -> dict[str, str]:
    body = {"role": "ingest", "name": "kiosk-17", "resources": list(resources)}
    issued = api.client.post("/v1/keys", json=body, headers=api.admin)
    assert issued.status_code == 201, issued.text
    assert issued.json()["resources"] == sorted(resources)
    return {"X-API-Key": issued.json()["secret"]}


def test_a_scoped_key_writes_its_own_resources_sessions_and_no_others(api: Api) -> None:
    key = scoped_key(api, "kiosk-17")
    mine = api.client.post("/v1/sessions", json={**KIOSK, "resource_id": "kiosk-17"}, headers=key)
    theirs = api.start(**KIOSK, resource_id="kiosk-18")  # started by the product's back end
    refused_start = api.client.post(
        "/v1/sessions", json={**KIOSK, "resource_id": "kiosk-18"}, headers=key
    )
    mine_id, theirs_id = mine.json()["id"], theirs["id"]

    def post(path: str, body: Any = None) -> Any:
        return api.client.post(path, json=body, headers=key)

    events = [
        {"session_id": sid, "sequence_no": 1, "type": "frame", "at": mine.json()["started_at"]}
        for sid in (mine_id, theirs_id)
    ]
    batch = post("/v1/events/batch", {"events": events})

    assert mine.status_code == 201, mine.text
    assert "scoped" in assert_error(refused_start, 403, "forbidden")["detail"]
    assert_error(post(f"/v1/sessions/{theirs_id}/heartbeat"), 403, "forbidden")
    assert_error(post(f"/v1/sessions/{theirs_id}/exit"), 403, "forbidden")
    assert_error(api.client.get(f"/v1/sessions/{theirs_id}", headers=key), 403, "forbidden")
    assert api.client.get(f"/v1/sessions/{mine_id}", headers=key).status_code == 200
    assert post(f"/v1/sessions/{mine_id}/heartbeat").status_code == 200
    assert batch.json()["inserted"] == 1, batch.text
    ((index, error),) = [(r["index"], r["error"]) for r in batch.json()["errors"]]
    assert index == 1 and error.startswith("forbidden: ")
    assert api.client.get(f"/v1/sessions/{theirs_id}", headers=api.app).json()["status"] == "active"
    assert post(f"/v1/sessions/{mine_id}/exit").json()["status"] == "completed"


def test_a_scoped_key_sends_only_its_own_devices_telemetry(api: Api) -> None:
    key = scoped_key(api, "kiosk-1", "kiosk-2")
    session = api.start(**KIOSK, resource_id="kiosk-1")

    def post(path: str, body: Any) -> Any:
        return api.client.post(path, json=body, headers=key)

    other_device = {"device_id": "kiosk-9"}
    assert post("/v1/errors", an_error("e1")).status_code == 201
    assert_error(post("/v1/errors", an_error("e2", **other_device)), 403, "forbidden")
    mixed = [an_error("e3"), an_error("e4", **other_device)]
    assert_error(post("/v1/errors/batch", {"errors": mixed}), 403, "forbidden")
    assert post("/v1/performance", a_metric("m1", 120)).status_code == 201
    assert_error(post("/v1/performance", a_metric("m2", 120, **other_device)), 403, "forbidden")
    assert post("/v1/sales", a_sale("s1", session["id"])).status_code == 201
    assert_error(post("/v1/sales", a_sale("s2", session["id"], **other_device)), 403, "forbidden")
    stored = {e["id"] for e in api.client.get("/v1/errors", headers=api.app).json()["items"]}
    assert stored == {"e1"}  # nothing of a refused batch was stored


def test_only_ingest_keys_are_scoped_and_a_scope_names_something(api: Api) -> None:
    def create(body: object) -> list[str]:
        return invalid_fields(api.client.post("/v1/keys", json=body, headers=api.admin))

    assert create({"role": "app", "resources": ["kiosk-1"]}) == ["resources"]
    assert create({"role": "ingest", "resources": []}) == ["resources"]
    assert create({"role": "ingest", "resources": [""]}) == ["resources[0]"]
    assert create({"role": "ingest", "resources": [f"k{i}" for i in range(101)]}) == ["resources"]
    unscoped = api.client.post("/v1/keys", json={"role": "ingest"}, headers=api.admin).json()
    assert unscoped["resources"] is None
