"""Shared steps: a tenant's real app, and who is who in the story (name -> session)."""

from typing import Any

import pytest
from pytest_bdd import given

from tests.app_client import Api


@pytest.fixture
def visits() -> dict[str, dict[str, Any]]:
    """The last known state of each named person's session, as the API returned it."""
    return {}


@given("a webinar platform that sends its viewers' visits to sessionmeter")
def webinar_platform(api: Api) -> Api:
    return api


@pytest.fixture(autouse=True)
def on_every_backend(api: Api) -> Api:
    """Asked for up front so that every scenario runs on memory, SQLite and PostgreSQL
    (pytest parametrises only fixtures it sees before the steps run)."""
    return api
