"""The pages the service serves a person: the dashboard and the API reference, every file they
load from the service's own origin (in a browser: tests/browser)."""

import re
from html.parser import HTMLParser

import pytest

from tests.app_client import Api
from tests.http.envelope import assert_error

on_memory = pytest.mark.parametrize("storage_url", ["memory"], indirect=True)
OUTSIDE = re.compile(r"^(https?:)?//", re.IGNORECASE)


class Loads(HTMLParser):
    """The URLs a page loads or links to: src and href attributes, and CSS url(…) and @import."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]

    def handle_data(self, data: str) -> None:
        self.urls += re.findall(r"url\(\s*['\"]?([^'\")]+)|@import\s+['\"]([^'\"]+)", data)


def loaded_by(html: str) -> list[str]:
    parser = Loads()
    parser.feed(html)
    return [url if isinstance(url, str) else "".join(url) for url in parser.urls]


@on_memory
@pytest.mark.parametrize("path", ["/schema", "/schema/redoc", "/dashboard"])
def test_a_page_loads_nothing_from_another_origin(api: Api, path: str) -> None:
    page = api.client.get(path)
    urls = loaded_by(page.text)

    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert urls and [url for url in urls if OUTSIDE.match(url)] == []
    for url in urls:
        assert api.client.get(url).status_code == 200, url


@on_memory
def test_the_api_reference_is_redoc_and_the_schema_itself(api: Api) -> None:
    assert "Redoc.init(" in api.client.get("/schema").text
    assert api.client.get("/schema/openapi.json").json()["info"]["title"] == "sessionmeter"
    assert "\nopenapi: 3.1.0\n" in api.client.get("/schema/openapi.yaml").text
    # Swagger UI, RapiDoc and Stoplight Elements would load themselves from CDNs.
    for gone in ("/schema/swagger", "/schema/rapidoc", "/schema/elements"):
        assert api.client.get(gone).status_code == 404


@on_memory
def test_the_dashboard_takes_no_key_and_holds_to_its_own_origin(api: Api) -> None:
    page = api.client.get("/dashboard")
    script = api.client.get("/dashboard/main.js")

    assert "default-src 'self'" in page.text  # its Content-Security-Policy
    assert page.headers["cache-control"] == "no-cache"
    assert script.headers["content-type"].startswith("text/javascript")
    assert_error(api.client.get("/dashboard/missing.js"), 404, "not_found")


@on_memory
def test_vendored_files_are_cached_for_good(api: Api) -> None:
    vendored = api.client.get("/static/vendor/uplot-1.6.32/uPlot.iife.min.js")

    assert vendored.status_code == 200
    assert vendored.headers["cache-control"] == "max-age=31536000, public, immutable"
    assert api.client.get("/static/vendor/redoc-2.5.4/LICENSE").status_code == 200
