"""What the tracker script needs of the API: the script itself without a key, the exit's key in
the URL (a beacon sets no header) and nowhere else, how long a session may stay silent, and
CORS for the pages of the origins an operator names. In a browser: tests/browser."""

from collections.abc import Iterator

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from entrypoints.settings import SettingsError, origins
from tests.app_client import Api, app_of_its_own
from tests.http.envelope import assert_error

on_memory = pytest.mark.parametrize("storage_url", ["memory"], indirect=True)
SHOP = "https://shop.example"
PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "content-type,x-api-key",
}


@on_memory
def test_the_tracker_script_is_served_without_a_key_and_cached(api: Api) -> None:
    script = api.client.get("/v1/tracker.js")

    assert script.status_code == 200
    assert script.headers["content-type"].startswith("application/javascript")
    assert script.headers["cache-control"] == "max-age=3600, public"
    assert "sessionmeter" in script.text and "sendBeacon" in script.text


@on_memory
def test_a_beacon_exit_may_carry_its_key_in_the_url(api: Api) -> None:
    session = api.start(kind="webinar", subject_id=None, client_key="browser-1")
    key = api.ingest["X-API-Key"]

    beacon = api.client.post(
        f"/v1/sessions/{session['id']}/exit",
        params={"key": key},
        content=b'{"status": "abandoned"}',
        headers={"Content-Type": "text/plain;charset=UTF-8"},
    )

    assert beacon.status_code == 200 and beacon.json()["status"] == "abandoned"


@on_memory
def test_no_other_route_takes_a_key_from_the_url(api: Api) -> None:
    session = api.start()
    key = {"key": api.admin["X-API-Key"]}

    refused = [
        api.client.post(f"/v1/sessions/{session['id']}/heartbeat", params=key),
        api.client.get(f"/v1/sessions/{session['id']}", params=key),
        api.client.get("/v1/settings", params=key),
        api.client.post(f"/v1/sessions/{session['id']}/exit", params={"key": "sm_unknown"}),
    ]

    for response in refused:
        assert_error(response, 401, "unauthorized")


@on_memory
def test_a_start_says_how_long_its_session_may_stay_silent(api: Api) -> None:
    settings = {"idle_timeout_seconds": 12, "idle_timeouts": {"kiosk": 60, "lecture": None}}
    assert api.client.put("/v1/settings", json=settings, headers=api.admin).status_code == 200

    silent_for = {
        kind: api.start(kind=kind)["idle_timeout_seconds"]
        for kind in ("webinar", "kiosk", "lecture")
    }

    assert silent_for == {"webinar": 12, "kiosk": 60, "lecture": None}


@pytest.fixture
def shop_allowed() -> Iterator[TestClient[Litestar]]:
    with app_of_its_own(cors_origins=(SHOP,)) as client:
        yield client


def test_a_preflight_from_a_named_origin_passes(shop_allowed: TestClient[Litestar]) -> None:
    preflight = shop_allowed.options("/v1/sessions", headers={"Origin": SHOP, **PREFLIGHT})
    start = shop_allowed.post("/v1/sessions", json={}, headers={"Origin": SHOP})

    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == SHOP
    assert {"x-api-key", "content-type"} <= set(
        preflight.headers["access-control-allow-headers"].lower().split(", ")
    )
    assert start.headers["access-control-allow-origin"] == SHOP  # a 401 the page can read


def test_a_preflight_from_another_origin_does_not(shop_allowed: TestClient[Litestar]) -> None:
    other = shop_allowed.options(
        "/v1/sessions", headers={"Origin": "https://elsewhere.example", **PREFLIGHT}
    )

    assert other.status_code == 400
    assert "access-control-allow-origin" not in other.headers


@on_memory
def test_without_named_origins_no_page_elsewhere_may_call(api: Api) -> None:
    preflight = api.client.options("/v1/sessions", headers={"Origin": SHOP, **PREFLIGHT})

    assert "access-control-allow-origin" not in preflight.headers


def test_origins_are_checked_as_browsers_send_them() -> None:
    assert origins(f" {SHOP}, http://127.0.0.1:8080 ,") == (SHOP, "http://127.0.0.1:8080")
    assert origins("*") == ("*",)
    for wrong in (f"{SHOP}/", f"{SHOP}/shop", "shop.example"):
        with pytest.raises(SettingsError, match="not an origin"):
            origins(wrong)
