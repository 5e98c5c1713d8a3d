"""The operator dashboard in Chromium: an admin key opens it, the live page shows sessions
started just now, the usage chart is drawn, the kiosk page charts a funnel; a wrong key and a
lesser key are told apart; nothing fails in the console, at a desktop's size and a phone's."""

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import Page, ViewportSize, expect

from tests.browser.conftest import NARROW, WIDE, Site, Watched

pytestmark = pytest.mark.slow
FUNNEL = {
    "kind": "kiosk",
    "stages": [
        {"name": "frame", "match": {"type": "screen_enter", "label": "frame"}},
        {"name": "capture", "match": {"type": "capture"}},
        {"name": "payment", "match": {"type": "payment"}},
    ],
}


def now() -> str:
    return datetime.now(UTC).isoformat()


@pytest.fixture(scope="module")
def running(site: Site) -> list[str]:
    """Sessions started a moment ago, on resources named for this run: two kiosk visits (one
    through the funnel's first two stages) and a webinar viewer."""
    resources = [f"kiosk-{uuid.uuid4().hex[:6]}", f"webinar-{uuid.uuid4().hex[:6]}"]
    with site.admin_client() as admin:
        assert admin.put("/v1/funnels/photo", json=FUNNEL).status_code == 200
        started = []
        for kind, resource, who in [
            ("kiosk", resources[0], {"client_key": "kiosk-a"}),
            ("kiosk", resources[0], {"client_key": "kiosk-b"}),
            ("webinar", resources[1], {"subject_id": "ana"}),
        ]:
            body = {"kind": kind, "resource_id": resource, **who}
            answer = admin.post("/v1/sessions", json=body)
            assert answer.status_code == 201, answer.text
            started.append(answer.json()["id"])
        events = [
            {"session_id": started[0], "sequence_no": 1, "type": "screen_enter", "label": "frame", "at": now()},
            {"session_id": started[0], "sequence_no": 2, "type": "capture", "at": now()},
        ]  # fmt: skip
        assert admin.post("/v1/events/batch", json={"events": events}).json()["inserted"] == 2
    return resources


def open_with(page: Page, site: Site, key: str) -> None:
    page.goto(f"{site.server.base_url}/dashboard")
    page.get_by_label("Admin key").fill(key)
    page.get_by_role("button", name="Open").click()


def drawn(page: Page, chart: str) -> bool:
    """Whether the chart's canvas has a size and pixels that are not blank."""
    return bool(
        page.evaluate(
            """(chart) => {
                const canvas = document.querySelector(`${chart} canvas`);
                if (!canvas || !canvas.width || !canvas.height) return false;
                const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
                return pixels.some((value, i) => i % 4 === 3 && value > 0);
            }""",
            chart,
        )
    )


@pytest.mark.parametrize("viewport", [WIDE, NARROW], ids=["1280x800", "390x844"])
def test_an_admin_key_opens_live_usage_and_kiosk_pages(
    site: Site, running: list[str], watched: Watched, viewport: ViewportSize, artefacts: Path
) -> None:
    page, size = watched.page, f"{viewport['width']}x{viewport['height']}"
    page.set_viewport_size(viewport)
    open_with(page, site, site.admin)

    live = page.locator("#page")
    for resource in running:
        expect(live).to_contain_text(resource)
    expect(live).to_contain_text("sessions active now")
    page.screenshot(path=artefacts / f"dashboard-live-{size}.png", full_page=True)

    page.get_by_role("tab", name="Usage over time").click()
    expect(page.locator("#usage-chart canvas")).to_be_attached()
    assert drawn(page, "#usage-chart")
    page.screenshot(path=artefacts / f"dashboard-usage-{size}.png", full_page=True)

    page.get_by_role("tab", name="Kiosk").click()
    expect(page.locator("#funnel-chart canvas")).to_be_attached()
    assert drawn(page, "#funnel-chart")
    for stage in ("frame", "capture", "payment"):
        expect(live.locator(".scroll table").first).to_contain_text(stage)
    page.screenshot(path=artefacts / f"dashboard-kiosk-{size}.png", full_page=True)

    for tab in ("Watch time", "Credits", "Trials", "Cost model"):
        page.get_by_role("tab", name=tab).click()
        expect(page.get_by_role("tab", name=tab)).to_have_attribute("aria-selected", "true")
        expect(live.locator("h2, .cards").first).to_be_visible()
        expect(page.locator("#message")).to_be_hidden()
    assert watched.errors == []


def test_a_wrong_key_is_told_so(site: Site, watched: Watched) -> None:
    open_with(watched.page, site, "sm_not-a-key")

    expect(watched.page.get_by_role("alert")).to_contain_text("This key was not accepted")
    expect(watched.page.locator("#tabs")).to_be_hidden()


def test_an_ingest_key_is_told_this_needs_an_admin_key(site: Site, watched: Watched) -> None:
    open_with(watched.page, site, site.ingest)

    expect(watched.page.get_by_role("alert")).to_contain_text("this needs an admin key")
    expect(watched.page.locator("#tabs")).to_be_hidden()
    assert watched.page.evaluate("() => sessionStorage.length") == 0
