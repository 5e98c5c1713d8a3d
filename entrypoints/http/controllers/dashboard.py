"""The operator dashboard (GET /dashboard, a single page that asks for an admin key and reads the
/v1 API with it) and the vendored libraries it and the API reference load. Static files, no key:
the page holds no data until the operator gives it a key."""

from litestar.datastructures import CacheControlHeader
from litestar.static_files import create_static_files_router

from entrypoints.http.shipped import STATIC, VENDORED

YEAR = 365 * 24 * 3600

# index.html at /dashboard, its scripts and styles beside it. Revalidated on every load (ETag), so
# a new release's page never runs with the last release's scripts.
dashboard = create_static_files_router(
    "/dashboard",
    [STATIC / "dashboard"],
    html_mode=True,
    name="dashboard",
    cache_control=CacheControlHeader(no_cache=True),
)

# Each library's folder is named for its version, so a file's content never changes at its URL.
vendored = create_static_files_router(
    VENDORED,
    [STATIC / "vendor"],
    name="vendored",
    cache_control=CacheControlHeader(public=True, max_age=YEAR, immutable=True),
)
