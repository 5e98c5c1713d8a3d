"""The API reference pages under /schema: Redoc (at /schema and /schema/redoc) from the vendored
bundle, and the schema itself as JSON and YAML. Litestar's defaults load Redoc, Swagger UI,
RapiDoc and Stoplight Elements, Google fonts and a favicon from CDNs; those are left out."""

from litestar.openapi.plugins import (
    JsonRenderPlugin,
    OpenAPIRenderPlugin,
    RedocRenderPlugin,
    YamlRenderPlugin,
)

from entrypoints.http.shipped import FAVICON, REDOC_JS

RENDER_PLUGINS: list[OpenAPIRenderPlugin] = [
    RedocRenderPlugin(
        path=["/", "/redoc"],
        js_url=REDOC_JS,
        google_fonts=False,
        favicon=f"<link rel='icon' type='image/svg+xml' href='{FAVICON}'>",
    ),
    JsonRenderPlugin(),
    YamlRenderPlugin(),
]
