"""The HTTP suite runs on the API's backends (tests/conftest.py API_BACKENDS)."""

from tests.conftest import api_storage_url  # noqa: F401 (the storage_url fixture of this suite)
