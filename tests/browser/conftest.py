"""Debian's Chromium (apt-get install chromium), driven by Playwright, against a real
`sessionmeter serve` with its background jobs every second or two.

One store is enough here: these tests prove what the browser sees and sends; the HTTP suite and
the storage contract suite prove every store. So the server runs on an empty SQLite file.
Playwright's own browser download is not used (it does not work on these machines)."""

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    Playwright,
    ViewportSize,
    sync_playwright,
)

from tests.e2e.serving import Server, serving
from tests.servers import free_port

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
JOBS = {"reaper_interval_seconds": "1", "rollup_interval_seconds": "2"}
WIDE = ViewportSize(width=1280, height=800)
NARROW = ViewportSize(width=390, height=844)  # a phone
ARTEFACTS = Path(__file__).parents[2] / "test-artefacts"

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Site:
    """The server, a tenant's keys, and a second origin serving the test's own pages."""

    server: Server
    admin: str
    ingest: str
    pages: str  # the second origin's base URL
    pages_folder: Path

    def admin_client(self) -> httpx.Client:
        return self.server.client(self.admin)


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """The pages' requests are the test's business, not its output."""


# Closed when the browser tests are done: Playwright's sync API keeps its event loop running on
# the main thread, and a later test's asyncio.run would fail.
@pytest.fixture(scope="package")
def chromium() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail("no /usr/bin/chromium: apt-get install -y chromium (make test does)")
    with sync_playwright() as playwright:
        yield launch(playwright)


def launch(playwright: Playwright) -> Browser:
    # Playwright turns the back/forward cache off by default (--disable-back-forward-cache);
    # the tracker's bfcache test needs it on, as every user's Chromium has it.
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM),
        args=ARGS,
        ignore_default_args=["--disable-back-forward-cache"],
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """Started in this order because the server must name the pages' origin (CORS)."""
    folder = tmp_path_factory.mktemp("pages")
    pages = ThreadingHTTPServer(("127.0.0.1", free_port()), partial(QuietHandler, directory=folder))
    origin = f"http://127.0.0.1:{pages.server_address[1]}"
    threading.Thread(target=pages.serve_forever, daemon=True).start()
    try:
        with serving(tmp_path_factory.mktemp("server"), cors_origins=origin, **JOBS) as server:
            server.operator("tenants", "create", "browser")
            admin = server.operator("keys", "create", "--tenant", "browser", "--role", "admin")
            ingest = server.operator("keys", "create", "--tenant", "browser", "--role", "ingest")
            yield Site(server, admin, ingest, origin, folder)
    finally:
        pages.shutdown()


@dataclass
class Watched:
    """A page, with the console errors and uncaught exceptions it has shown so far."""

    page: Page
    errors: list[str]


@pytest.fixture
def watched(chromium: Browser) -> Iterator[Watched]:
    context = chromium.new_context(viewport=WIDE)
    page = context.new_page()
    errors: list[str] = []

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.on("console", console)
    page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
    yield Watched(page, errors)
    context.close()


@pytest.fixture(scope="session")
def artefacts() -> Path:
    """Screenshots, for a person to look at (git-ignored)."""
    ARTEFACTS.mkdir(exist_ok=True)
    return ARTEFACTS
