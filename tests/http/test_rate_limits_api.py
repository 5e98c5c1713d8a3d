"""Per-key rate limits: past the tenant's `rate_limit_per_second` an ingest or app key is refused
with 429 and Retry-After; admin keys and other keys keep their own counts."""

from typing import Any

from tests.app_client import Api
from tests.http.envelope import assert_error


def burst(api: Api, headers: dict[str, str], requests: int) -> list[Any]:
    return [api.client.get("/v1/sessions/not-a-session", headers=headers) for _ in range(requests)]


def test_a_key_past_its_limit_is_told_when_to_retry_and_other_keys_are_not(api: Api) -> None:
    changed = api.client.put("/v1/settings", json={"rate_limit_per_second": 5}, headers=api.admin)
    assert changed.json()["rate_limit_per_second"] == 5, changed.text

    app = burst(api, api.app, 12)
    ingest = burst(api, api.ingest, 5)  # its own count
    admin = burst(api, api.admin, 12)  # never limited

    statuses = [r.status_code for r in app]
    assert statuses[:5] == [404] * 5 and statuses.count(429) >= 5, statuses
    refused = next(r for r in app if r.status_code == 429)
    assert "5 requests a second" in assert_error(refused, 429, "rate_limited")["detail"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 2
    assert {r.status_code for r in ingest} == {404}
    assert {r.status_code for r in admin} == {404}


def test_the_limit_is_a_setting_that_can_be_lifted(api: Api) -> None:
    def put(value: object) -> Any:
        return api.client.put(
            "/v1/settings", json={"rate_limit_per_second": value}, headers=api.admin
        )

    refused = assert_error(put(0), 422, "validation_error")
    assert refused["fields"] == [
        {"field": "rate_limit_per_second", "message": "must be at least 1"}
    ]
    assert put(None).json()["rate_limit_per_second"] is None
    assert {r.status_code for r in burst(api, api.app, 300)} == {404}
