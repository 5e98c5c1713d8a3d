"""CORS: the origins whose pages may call the API (a site's pages running the tracker, which
sends its key in a header, so its requests are preflighted). None configured: no CORS headers,
and browsers keep other origins' pages out. The exit beacon needs none (a text/plain POST)."""

from litestar.config.cors import CORSConfig

from entrypoints.settings import Settings


def cors(settings: Settings) -> CORSConfig | None:
    if not settings.cors_origins:
        return None
    return CORSConfig(
        allow_origins=list(settings.cors_origins),
        allow_methods=["GET", "POST"],
        allow_headers=["X-API-Key", "Authorization", "Content-Type"],
    )
