"""The HTTP API (Litestar): controllers per resource, msgspec bodies, one error envelope."""
