"""One controller per area, as in `application/`; `entrypoints.http.routes` puts them under /v1."""
