"""The tracker script for web pages (GET /v1/tracker.js): no key, cached by browsers and proxies.
It sits outside the /v1 router, whose guard asks every request for a key."""

from litestar import get
from litestar.datastructures import CacheControlHeader

from entrypoints.http.shipped import STATIC

# An hour: a fixed tracker reaches every page within it, and a page view costs no request for it.
CACHED_SECONDS = 3600
SCRIPT = (STATIC / "tracker.js").read_text(encoding="utf-8")


@get(
    "/v1/tracker.js",
    tags=["tracker"],
    summary="The tracker script for web pages",
    operation_id="getTracker",
    media_type="application/javascript",
    cache_control=CacheControlHeader(public=True, max_age=CACHED_SECONDS),
    description=(
        'A script for web pages, loaded with `<script src=".../v1/tracker.js">`, no key needed. '
        "`sessionmeter.start({endpoint, key, kind, resourceId, subjectId?, attributes?})` starts "
        "a session under an id it makes (so a retried start is a replay), retrying on network "
        "errors, 429 and 5xx; heartbeats every third of the session's `idle_timeout_seconds` "
        "while the page is visible; and on `pagehide` sends the exit with "
        "`navigator.sendBeacon`, which cannot set headers: the beacon carries the key as the "
        "exit route's `key` query parameter. A page shown again from the back/forward cache "
        "starts a new session. Anonymous visitors (no `subjectId`) get a `client_key` that lives "
        "as long as the page. No cookies and no storage; it calls only `endpoint`, which must "
        "allow the page's origin (`SESSIONMETER_CORS_ORIGINS`). Give it an `ingest` key and a "
        "kind without a rate or plan limit."
    ),
)
async def tracker() -> str:
    return SCRIPT
