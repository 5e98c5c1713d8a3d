"""What the fuzzer (test_fuzzing.py) found, each kept as the exact request it sent: the answer is
in the envelope, and its status is one the schema declares for the operation."""

from typing import Any

import pytest

from tests.app_client import Api
from tests.http.envelope import assert_error

pytestmark = pytest.mark.parametrize("storage_url", ["sqlite"], indirect=True)


def assert_declared(api: Api, method: str, path: str, answer: Any, status: int, code: str) -> None:
    assert_error(answer, status, code)
    operation = api.client.get("/schema/openapi.json").json()["paths"][path][method]
    assert str(status) in operation["responses"], f"{method} {path} does not declare {status}"


def test_the_distribution_of_an_unknown_session_is_a_declared_404(api: Api) -> None:
    answer = api.client.get("/v1/sessions/0/distribution?field=label", headers=api.admin)
    assert_declared(api, "get", "/v1/sessions/{session_id}/distribution", answer, 404, "not_found")


def test_the_events_of_an_unknown_session_are_a_declared_404(api: Api) -> None:
    answer = api.client.get(
        "/v1/sessions/0/events?type=null&x-schemathesis-unknown-property=42", headers=api.admin
    )
    assert_declared(api, "get", "/v1/sessions/{session_id}/events", answer, 404, "not_found")


def test_a_grant_reusing_an_idempotency_key_is_a_declared_409(api: Api) -> None:
    path = "/v1/accounts/Eu%C3%8AZ%C3%B1%C3%A2w%0B%04/credits/grants"
    first = {"amount": 68964814983, "idempotency_key": "k", "reason": "EuÊZñâw\x0b\x04"}
    assert api.client.post(path, json=first, headers=api.admin).status_code == 201

    answer = api.client.post(path, json={**first, "amount": 1}, headers=api.admin)

    assert_declared(
        api, "post", "/v1/accounts/{subject_id}/credits/grants", answer, 409, "conflict"
    )


def test_an_unsigned_livekit_webhook_is_a_declared_401(api: Api) -> None:
    answer = api.client.post("/v1/webhooks/livekit", headers=api.admin)
    assert_declared(api, "post", "/v1/webhooks/livekit", answer, 401, "unauthorized")


def test_a_grant_sent_again_is_a_declared_200_replay(api: Api) -> None:
    grant = {"amount": 1, "idempotency_key": "k", "reason": "0"}
    first = api.client.post("/v1/accounts/0/credits/grants", json=grant, headers=api.admin)

    again = api.client.post("/v1/accounts/0/credits/grants", json=grant, headers=api.admin)

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    operation = api.client.get("/schema/openapi.json").json()["paths"][
        "/v1/accounts/{subject_id}/credits/grants"
    ]["post"]
    assert "200" in operation["responses"]
