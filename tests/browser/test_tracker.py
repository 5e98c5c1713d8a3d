"""The tracker script on a page of another origin, in Chromium: a session that heartbeats while
the page is shown and ends by its beacon when the page goes; a new session when the page comes
back from the back/forward cache; and a console error, and no request, without the options it
needs."""

import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import Page, Request

from tests.browser.conftest import Site, Watched

pytestmark = pytest.mark.slow
# Short, so that heartbeats come every 4 s (a third of it); the reaper runs every second.
IDLE_TIMEOUT_SECONDS = 12
PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>A shop</title><link rel="icon" href="data:,">
<script src="{server}/v1/tracker.js"></script></head>
<body><p>A product page.</p><a href="other.html">another page</a>
<script>
  addEventListener("pageshow", (event) => {{ if (event.persisted) window.restored = true; }});
  sessionmeter.start({options});
</script></body></html>
"""


@pytest.fixture(scope="module", autouse=True)
def short_idle_timeout(site: Site) -> None:
    with site.admin_client() as admin:
        settings = {"idle_timeout_seconds": IDLE_TIMEOUT_SECONDS}
        assert admin.put("/v1/settings", json=settings).status_code == 200
    (site.pages_folder / "other.html").write_text(
        '<!DOCTYPE html><title>Another</title><link rel="icon" href="data:,">'
    )


def page_with(site: Site, options: str) -> str:
    """A page of the second origin that starts the tracker with these options (JavaScript)."""
    name = f"{uuid.uuid4().hex}.html"
    html = PAGE.format(server=site.server.base_url, options=options)
    (site.pages_folder / name).write_text(html)
    return f"{site.pages}/{name}"


def tracked(site: Site, resource: str) -> str:
    options = (
        f'{{endpoint: "{site.server.base_url}", key: "{site.ingest}", kind: "webinar", '
        f'resourceId: "{resource}", attributes: {{page: "product"}}}}'
    )
    return page_with(site, options)


def sessions_of(site: Site, resource: str) -> list[dict[str, Any]]:
    with site.admin_client() as admin:
        answer = admin.get("/v1/sessions", params={"resource_id": resource})
        assert answer.status_code == 200, answer.text
        return list(reversed(answer.json()["items"]))  # oldest first


def until(check: Any, seconds: float) -> Any:
    deadline = time.monotonic() + seconds
    while not (found := check()):
        assert time.monotonic() < deadline, f"not within {seconds} s"
        time.sleep(0.2)
    return found


def at(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp)


def test_a_page_view_heartbeats_and_ends_by_its_beacon(site: Site, watched: Watched) -> None:
    resource = f"launch-{uuid.uuid4().hex[:6]}"
    watched.page.goto(tracked(site, resource))
    until(lambda: sessions_of(site, resource), 10)
    time.sleep(IDLE_TIMEOUT_SECONDS * 0.75)  # two heartbeats

    watched.page.close()
    closed = datetime.now().astimezone()
    ended = until(lambda: [s for s in sessions_of(site, resource) if s["ended_at"]], 5)

    assert len(ended) == 1 == len(sessions_of(site, resource))
    session = ended[0]
    assert session["status"] == "completed"  # the reaper's would be timed_out
    assert session["client_key"] and session["subject_id"] is None
    assert session["attributes"]["page"] == "product"
    assert session["attributes"]["referrer"].startswith(site.pages)
    assert at(session["last_seen_at"]) >= at(session["started_at"]) + timedelta(seconds=3)
    # Ended at the beacon, long before the reaper could have ended it.
    assert at(session["ended_at"]) < closed + timedelta(seconds=3)
    assert at(session["ended_at"]) < at(session["last_seen_at"]) + timedelta(
        seconds=IDLE_TIMEOUT_SECONDS
    )
    assert watched.errors == []


def test_a_page_back_from_the_bfcache_is_a_new_session(site: Site, watched: Watched) -> None:
    page, resource = watched.page, f"catalogue-{uuid.uuid4().hex[:6]}"
    page.goto(tracked(site, resource))
    until(lambda: sessions_of(site, resource), 10)

    page.click("text=another page")
    page.wait_for_url("**/other.html")
    # A page restored from the bfcache fires pageshow (persisted), not load: wait for the commit.
    page.go_back(wait_until="commit")
    page.wait_for_function("() => window.restored === true", timeout=5000)
    sessions = until(lambda: len(s := sessions_of(site, resource)) == 2 and s, 10)

    first, second = sessions
    assert first["status"] == "completed" and first["ended_at"]
    assert second["status"] == "active" and second["id"] != first["id"]
    assert second["client_key"] == first["client_key"]  # the same page, a second visit
    assert watched.errors == []


@pytest.mark.parametrize("missing", ["endpoint", "key"])
def test_without_an_option_the_tracker_says_so_and_sends_nothing(
    site: Site, watched: Watched, missing: str
) -> None:
    options = {
        "endpoint": f'"{site.server.base_url}"',
        "key": f'"{site.ingest}"',
        "kind": '"webinar"',
        "resourceId": '"nowhere"',
    }
    del options[missing]
    requests: list[Request] = []
    watched.page.on("request", lambda request: requests.append(request))

    load(
        watched.page,
        page_with(site, "{" + ", ".join(f"{k}: {v}" for k, v in options.items()) + "}"),
    )

    assert len(watched.errors) == 1 and missing in watched.errors[0]
    api = [r.url for r in requests if r.url.startswith(site.server.base_url)]
    assert api == [f"{site.server.base_url}/v1/tracker.js"]


def load(page: Page, url: str) -> None:
    page.goto(url)
    page.wait_for_load_state("networkidle")


# The tracker on a page whose fetch and sendBeacon are stand-ins the test steers: the start
# fails or is refused as the test says, and every request is noted.
STEERED = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Steered</title><link rel="icon" href="data:,">
<script>
  window.sent = {{ starts: [], beacons: [] }};
  window.startAnswers = {answers};
  window.fetch = async (url, init) => {{
    const body = JSON.parse(init.body);
    if (!url.endsWith("/v1/sessions")) return new Response("{{}}", {{ status: 200 }});
    window.sent.starts.push(body.id);
    const status = window.startAnswers.shift() ?? 201;
    if (status === 0) throw new TypeError("Failed to fetch");
    const answer = status === 201 ? {{ id: body.id, idle_timeout_seconds: 300 }} : {{ error: "x" }};
    return new Response(JSON.stringify(answer), {{ status }});
  }};
  navigator.sendBeacon = (url) => {{ window.sent.beacons.push(url); return true; }};
</script>
<script src="{server}/v1/tracker.js"></script></head>
<body><script>
  sessionmeter.start({{ endpoint: "{server}", key: "sm_page_key", kind: "webinar", resourceId: "r" }});
</script></body></html>
"""


def steered(site: Site, page: Page, answers: str) -> None:
    name = f"steered-{uuid.uuid4().hex}.html"
    html = STEERED.format(server=site.server.base_url, answers=answers)
    (site.pages_folder / name).write_text(html)
    page.goto(f"{site.pages}/{name}")


def left_and_restored(page: Page) -> None:
    """What the page sees of a trip to the back/forward cache and back."""
    page.evaluate(
        """() => {
        dispatchEvent(new PageTransitionEvent("pagehide", { persisted: true }));
        dispatchEvent(new PageTransitionEvent("pageshow", { persisted: true }));
    }"""
    )


def test_a_start_still_retrying_when_its_page_went_is_not_sent_again(
    site: Site, watched: Watched
) -> None:
    """The first start meets a network error and waits a second to retry; meanwhile the page
    goes to the bfcache and comes back, starting a new session. The old start must not be
    retried: it would open a session nobody heartbeats or ends (reaped later, counted, billed)."""
    page = watched.page
    steered(site, page, "[0]")
    page.wait_for_function("() => window.sent.starts.length === 1")

    left_and_restored(page)
    page.wait_for_timeout(2500)  # past the first retry's back-off

    first, *later = page.evaluate("() => window.sent.starts")
    assert len(later) == 1 and later[0] != first, later


def test_a_refused_start_sends_no_exit_when_its_page_goes(site: Site, watched: Watched) -> None:
    """A start refused (403: a wrong key) opened no session: the page's exit beacon would carry
    its key in a URL for nothing."""
    page = watched.page
    steered(site, page, "[403]")
    page.wait_for_function("() => window.sent.starts.length === 1")
    page.wait_for_timeout(200)

    page.evaluate('() => dispatchEvent(new PageTransitionEvent("pagehide", { persisted: false }))')

    assert page.evaluate("() => window.sent.beacons") == []
    assert len(watched.errors) == 1 and "403" in watched.errors[0]
