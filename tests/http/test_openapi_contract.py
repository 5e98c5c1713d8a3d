"""The served OpenAPI schema tells the truth about errors: every one in the envelope the service
answers, every status a route's guard, body and parameters can answer, 429 and 503 with
Retry-After."""

from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from entrypoints.http.errors import PaymentRequiredOut
from tests.app_client import Api, serve_app
from tests.http.envelope import assert_error
from tests.http.test_credits_api import counseling_rate
from tests.http.test_trials_api import FREE, put_plan

METHODS = {"get", "put", "post", "delete", "patch"}
KEYLESS = {
    "/v1/webhooks/livekit",  # LiveKit signs its webhooks; it holds no API key of ours
    "/v1/tracker.js",  # a script for any web page
}
# The exit also takes its key in the URL, for navigator.sendBeacon (it can set no header).
BEACON = {("POST", "/v1/sessions/{session_id}/exit")}
PAYMENT_CODES = {"insufficient_credits", "trial_exhausted", "quota_exceeded"}
on_memory = pytest.mark.parametrize("storage_url", ["memory"], indirect=True)

Operations = list[tuple[str, str, dict[str, Any]]]


@pytest.fixture(scope="module")
def schema() -> Iterator[dict[str, Any]]:
    for api in serve_app("memory://"):
        served = api.client.get("/schema/openapi.json")
        assert served.status_code == 200
        yield dict(served.json())


@pytest.fixture(scope="module")
def operations(schema: dict[str, Any]) -> Operations:
    return [
        (method.upper(), path, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def _errors(operation: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {int(s): r for s, r in operation["responses"].items() if int(s) >= 400}


def _envelopes(schema: dict[str, Any], response: dict[str, Any]) -> list[dict[str, Any]]:
    """The object schemas an error response may carry (one, or each of a oneOf), resolved."""
    declared = response["content"]["application/json"]["schema"]
    refs = [v["$ref"] for v in declared.get("oneOf", [declared])]
    components = schema["components"]["schemas"]
    return [components[ref.removeprefix("#/components/schemas/")] for ref in refs]


def test_no_operation_declares_litestars_own_error_shape(operations: Operations) -> None:
    litestars = [
        (method, path, status)
        for method, path, operation in operations
        for status, response in _errors(operation).items()
        if "status_code" in response["content"]["application/json"]["schema"].get("properties", {})
    ]
    assert litestars == []


def test_every_error_response_is_the_envelope(
    schema: dict[str, Any], operations: Operations
) -> None:
    for method, path, operation in operations:
        for status, response in _errors(operation).items():
            for envelope in _envelopes(schema, response):
                where = (method, path, status, envelope.get("title"))
                assert {"error", "detail"} <= set(envelope["required"]), where
                assert envelope["properties"]["detail"] == {"type": "string"}, where
                if status == 422:
                    assert "fields" in envelope["required"], where
                if status == 402:
                    assert envelope["properties"]["error"]["const"] in PAYMENT_CODES, where


def test_every_keyed_operation_declares_401_429_and_503_with_retry_after(
    operations: Operations,
) -> None:
    keyed = [(m, p, op) for m, p, op in operations if p.startswith("/v1/") and p not in KEYLESS]
    assert len(keyed) > 40
    for method, path, operation in keyed:
        errors = _errors(operation)
        key_in_query: list[dict[str, list[str]]] = (
            [{"keyInQuery": []}] if (method, path) in BEACON else []
        )
        expected = [{"apiKey": []}, {"bearer": []}, *key_in_query]
        assert operation["security"] == expected, (method, path)
        assert {401, 429, 503} <= set(errors), (method, path)
        for told_when in (429, 503):
            retry_after = errors[told_when]["headers"]["Retry-After"]
            assert retry_after["required"] and retry_after["schema"]["type"] == "integer"


def test_bodies_and_parameters_declare_what_reading_them_answers(operations: Operations) -> None:
    for method, path, operation in operations:
        errors = set(_errors(operation))
        if "requestBody" in operation and path not in KEYLESS:
            assert {400, 413, 422} <= errors, (method, path)
        if operation.get("parameters"):
            assert 422 in errors, (method, path)


def test_a_route_that_stores_declares_the_200_of_a_replay(operations: Operations) -> None:
    stores = [(m, p, op["responses"]) for m, p, op in operations if "201" in op["responses"]]
    replayed = [(m, p) for m, p, answers in stores if answers.get("200", {}).get("content")]
    assert ("POST", "/v1/sessions") in replayed
    assert ("POST", "/v1/accounts/{subject_id}/credits/grants") in replayed
    for _, _, answers in stores:
        if "200" in answers:
            assert answers["200"]["content"] == answers["201"]["content"]


def test_a_start_declares_its_402_with_the_particulars(operations: Operations) -> None:
    start = next(op for m, p, op in operations if (m, p) == ("POST", "/v1/sessions"))
    refs = {
        v["$ref"] for v in _errors(start)[402]["content"]["application/json"]["schema"]["oneOf"]
    }
    assert refs >= {
        "#/components/schemas/InsufficientCreditsOut",
        "#/components/schemas/TrialExhaustedOut",
    }


def test_what_only_some_routes_answer_is_declared_on_them(operations: Operations) -> None:
    declared = {(method, path): set(_errors(op)) for method, path, op in operations}
    assert 503 in declared["GET", "/health"]
    assert 503 in declared["POST", "/v1/webhooks/livekit"]  # its signer's account is read
    assert 402 in declared["POST", "/v1/accounts/{subject_id}/resources"]


@on_memory
def test_the_402s_answered_are_the_402s_declared(api: Api) -> None:
    put_plan(api, "free", FREE)
    counseling_rate(api)
    api.client.put(
        "/v1/settings", json={"overdraft": "hard", "min_start_credits": 20}, headers=api.admin
    )
    api.start(kind="practice", resource_id="pdf-1", subject_id="mina")
    starts = [
        {"kind": "practice", "resource_id": "pdf-1", "subject_id": "mina"},
        {"kind": "counseling", "resource_id": "room", "subject_id": "dr-cho"},
    ]
    refused = [api.client.post("/v1/sessions", json=s, headers=api.app) for s in starts]
    for resource in ("a", "b"):
        over = api.client.post(
            "/v1/accounts/u/resources",
            json={"resource_id": resource, "kind": "pdf"},
            headers=api.admin,
        )
    refused.append(over)

    codes = [assert_error(r, 402, r.json()["error"])["error"] for r in refused]
    assert codes == ["trial_exhausted", "insufficient_credits", "quota_exceeded"]
    for response in refused:
        msgspec.json.decode(response.content, type=PaymentRequiredOut, strict=True)


@pytest.mark.parametrize(
    ("path", "field", "required"),
    [
        ("/v1/events/batch", "events", {"session_id", "sequence_no", "type", "at"}),
        ("/v1/errors/batch", "errors", {"id", "device_id", "type", "message", "at"}),
        ("/v1/performance/batch", "metrics", {"id", "device_id", "type", "started_at"}),
    ],
)
def test_a_batchs_items_are_documented_though_each_is_read_on_its_own(
    schema: dict[str, Any], path: str, field: str, required: set[str]
) -> None:
    """The batch routes read each item on its own, so that one bad item does not sink the
    batch; the schema still says what an item is, not any JSON value."""
    components = schema["components"]["schemas"]
    body = schema["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    items = components[body["$ref"].rsplit("/", 1)[1]]["properties"][field]["items"]
    item = components[items["$ref"].rsplit("/", 1)[1]]
    assert required <= set(item["required"]) <= set(item["properties"])
