"""Files shipped inside the package (entrypoints/http/static/, listed in pyproject.toml's
package-data) and the URLs they are served at: the dashboard, the tracker script, and the browser
libraries vendored from npm (static/vendor/VENDORED.md). Every page the service serves loads
them from its own origin, never from a CDN."""

from pathlib import Path

STATIC = Path(__file__).parent / "static"
VENDORED = "/static/vendor"
REDOC_JS = f"{VENDORED}/redoc-2.5.4/redoc.standalone.js"
FAVICON = "/dashboard/favicon.svg"
