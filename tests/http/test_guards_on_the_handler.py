"""The /v1 guard is given the route handler itself, not a copy made for it on every request
(entrypoints/http/guards_on_the_handler.py), and still refuses what it refused."""

from typing import Any, NoReturn

import pytest

from tests.app_client import Api

on_memory = pytest.mark.parametrize("storage_url", ["memory"], indirect=True)


@on_memory
def test_a_session_starts_and_exits_without_a_copy_of_its_route_handler(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_copy(*_: Any) -> NoReturn:
        raise AssertionError("a route handler was copied for its guard")

    monkeypatch.setattr("litestar.handlers.base.copy", no_copy)
    session = api.start()
    exited = api.client.post(f"/v1/sessions/{session['id']}/exit", headers=api.app)
    assert exited.status_code == 200, exited.text


@on_memory
def test_the_guard_still_refuses_a_missing_key_and_a_key_without_the_role(api: Api) -> None:
    body = {"kind": "webinar", "resource_id": "w1", "subject_id": "u1"}
    assert api.client.post("/v1/sessions", json=body).status_code == 401
    listed = api.client.get("/v1/keys", headers=api.ingest)
    assert listed.status_code == 403, listed.text
