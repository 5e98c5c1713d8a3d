"""POST/GET/DELETE /v1/keys: admins issue keys (the secret once), list them without secrets, and
revoke a leaked one, which is refused from then on."""

from datetime import UTC, datetime, timedelta

from dependency_injector import providers

from tests.app_client import Api
from tests.fakes import FakeClock
from tests.http.envelope import assert_error, invalid_fields


def test_a_key_is_issued_once_listed_without_its_secret_and_refused_once_revoked(api: Api) -> None:
    issued = api.client.post("/v1/keys", json={"role": "app", "name": "billing"}, headers=api.admin)
    key = issued.json()
    headers = {"X-API-Key": key["secret"]}

    used = api.client.get("/v1/sessions", headers=headers)
    listed = api.client.get("/v1/keys", headers=api.admin).json()["items"]
    revoked = api.client.delete(f"/v1/keys/{key['id']}", headers=api.admin)
    again = api.client.delete(f"/v1/keys/{key['id']}", headers=api.admin)
    refused = api.client.get("/v1/sessions", headers=headers)

    assert issued.status_code == 201 and key["secret"].startswith("sm_"), issued.text
    assert used.status_code == 200
    (shown,) = [k for k in listed if k["id"] == key["id"]]
    assert "secret" not in shown and (shown["name"], shown["role"]) == ("billing", "app")
    assert shown["last_used_at"] is not None and shown["last_used_at"].endswith(":00Z")
    assert {k["role"] for k in listed} == {"app", "ingest", "admin"}
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert again.json()["revoked_at"] == revoked.json()["revoked_at"]
    assert "revoked" in assert_error(refused, 401, "unauthorized")["detail"]
    assert_error(api.client.delete("/v1/keys/nope", headers=api.admin), 404, "not_found")


def test_a_key_that_expires_stops_working_then(api: Api) -> None:
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
    api.container.outside.clock.override(providers.Object(clock))
    try:
        expires = (clock.now() + timedelta(hours=1)).isoformat()
        body = {"role": "ingest", "name": "kiosk-17", "expires_at": expires}
        secret = api.client.post("/v1/keys", json=body, headers=api.admin).json()["secret"]
        session = api.start(kind="photo", resource_id="booth-1", subject_id=None, client_key="k")
        read = api.client.get(f"/v1/sessions/{session['id']}", headers={"X-API-Key": secret})
        clock.advance(3600 + 6)  # past its expiry and the 5 s the service remembers a key
        late = api.client.get(f"/v1/sessions/{session['id']}", headers={"X-API-Key": secret})
    finally:
        api.container.outside.clock.reset_override()

    assert read.status_code == 200, read.text
    assert "expired" in assert_error(late, 401, "unauthorized")["detail"]


def test_keys_are_managed_by_admins_with_bodies_that_make_sense(api: Api) -> None:
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()

    def create(body: object) -> list[str]:
        return invalid_fields(api.client.post("/v1/keys", json=body, headers=api.admin))

    assert create({"role": "owner"}) == ["role"]
    assert create({"role": "app", "expires_at": past}) == ["expires_at"]
    assert create({"role": "app", "name": ""}) == ["name"]
    assert create({"role": "app", "scope": "all"}) == ["scope"]
    for key in (api.ingest, api.app):
        assert_error(api.client.get("/v1/keys", headers=key), 403, "forbidden")
        assert_error(
            api.client.post("/v1/keys", json={"role": "admin"}, headers=key), 403, "forbidden"
        )
    theirs = api.client.get("/v1/keys", headers=api.admin).json()["items"][0]["id"]
    other_admin = api.client.post("/v1/keys", json={"role": "admin"}, headers=api.admin).json()
    assert other_admin["role"] == "admin"
    assert_error(
        api.client.delete(f"/v1/keys/{theirs}", headers=api.other_tenant), 403, "forbidden"
    )
