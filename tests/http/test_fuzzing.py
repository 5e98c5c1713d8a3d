"""schemathesis over the served OpenAPI schema, against `sessionmeter serve` on SQLite: every
operation, valid and invalid inputs alike, with an admin key (past every guard), and the writes a
browser or device makes with an ingest key. No input makes a 5xx; every answer's status, content
type and body are the ones the schema declares for it, so every error is in the envelope.

Examples are bounded and derandomised: the run is the same on every machine. The suite tries
EXAMPLES inputs per operation (about a minute on two cores); `make fuzz` tries five times as many
(SESSIONMETER_FUZZ_EXAMPLES). A failure prints the request that reproduces it (as curl); keep it as a plain
test in test_fuzzing_regressions.py when fixing it."""

import os
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from litestar.testing import TestClient
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.schemas import BaseSchema
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from entrypoints.container import build_container
from entrypoints.http.app import create_app
from entrypoints.settings import Settings
from tests.e2e.serving import Server, serving

pytestmark = [pytest.mark.slow, pytest.mark.fuzz]

SCHEMA = "/schema/openapi.json"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
Test = Callable[..., None]
EXAMPLES = int(os.environ.get("SESSIONMETER_FUZZ_EXAMPLES", "30"))
# What a browser, kiosk or device writes with its ingest key.
DEVICE_WRITES = ["sessions", "events", "kiosk telemetry", "snapshots"]


def bounded(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,  # no failures kept between runs: the examples are derandomised anyway
        suppress_health_check=list(HealthCheck),  # invalid inputs are meant to be refused
    )


def _served_schema() -> dict[str, Any]:
    """The schema the app serves, asked of it in-process: schemathesis makes its tests when pytest
    collects, before any server runs (its `from_fixture` loader fails on pytest 9.2)."""
    config = Settings(storage_url="memory://")
    served = TestClient(create_app(build_container(config), config)).get(SCHEMA)
    return dict(served.json())


def each_operation_of(schema: BaseSchema) -> Callable[[Test], Test]:
    """schemathesis's pytest parametrisation: one test per operation (its decorator is untyped)."""
    parametrize: Callable[[Test], Test] = schema.parametrize()
    return parametrize


# Reproductions print what was sent as it was sent: idempotency keys are not secrets here.
schema = schemathesis.openapi.from_dict(
    _served_schema(),
    config=SchemathesisConfig.from_dict({"output": {"sanitization": {"enabled": False}}}),
)
device_writes = schema.include(method="POST", tag=DEVICE_WRITES)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serving(tmp_path_factory.mktemp("fuzzed")) as server:
        server.operator("tenants", "create", "acme")
        yield server


@pytest.fixture(scope="module")
def admin_key(server: Server) -> str:
    return server.operator("keys", "create", "--tenant", "acme", "--role", "admin")


@pytest.fixture(scope="module")
def ingest_key(server: Server) -> str:
    return server.operator("keys", "create", "--tenant", "acme", "--role", "ingest")


def test_the_fuzzed_schema_is_the_one_the_server_serves(server: Server) -> None:
    assert httpx.get(server.base_url + SCHEMA).json() == schema.raw_schema


@each_operation_of(schema)
@bounded(examples=EXAMPLES)
def test_no_request_breaks_the_schemas_word(case: Any, server: Server, admin_key: str) -> None:
    case.call_and_validate(
        base_url=server.base_url, headers={"X-API-Key": admin_key}, checks=CHECKS
    )


@each_operation_of(device_writes)
@bounded(examples=max(1, EXAMPLES // 3))
def test_no_write_with_a_device_key_breaks_the_schemas_word(
    case: Any, server: Server, ingest_key: str
) -> None:
    case.call_and_validate(
        base_url=server.base_url, headers={"X-API-Key": ingest_key}, checks=CHECKS
    )
