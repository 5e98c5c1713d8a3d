"""The conventions every endpoint shares: keys, roles, the error envelope, health and schema."""

from importlib.metadata import version
from typing import Any

from dependency_injector import providers

from application.sessions.get_session import GetSession
from application.storage import StorageError
from domain.errors import Contended, Unauthorized
from tests.app_client import Api
from tests.http.envelope import assert_error, invalid_fields


def test_requests_without_a_known_key_are_unauthorized(api: Api) -> None:
    assert_error(api.client.get("/v1/sessions"), 401, "unauthorized")
    assert_error(
        api.client.get("/v1/sessions", headers={"X-API-Key": "sm_nope"}), 401, "unauthorized"
    )
    assert_error(
        api.client.get("/v1/sessions", headers={"Authorization": "Basic abc"}), 401, "unauthorized"
    )


def test_a_key_may_come_as_a_bearer_token_and_admin_keys_may_ingest(api: Api) -> None:
    bearer = {"Authorization": "Bearer " + api.app["X-API-Key"]}
    assert api.client.get("/v1/sessions", headers=bearer).status_code == 200
    started = api.client.post(
        "/v1/sessions",
        json={"kind": "webinar", "resource_id": "w", "subject_id": "u"},
        headers=api.admin,
    )
    assert started.status_code == 201


def test_each_tenant_sees_only_its_own_sessions(api: Api) -> None:
    mine = api.start()
    theirs = api.client.get("/v1/sessions", headers=api.other_tenant).json()
    assert theirs["items"] == []
    assert [s["id"] for s in api.client.get("/v1/sessions", headers=api.app).json()["items"]] == [
        mine["id"]
    ]


def test_a_key_is_checked_on_every_request_by_the_containers_authenticator(api: Api) -> None:
    class RevokedEverything:
        async def __call__(self, _: str | None) -> Any:
            raise Unauthorized("revoked")

    with api.container.use_cases.authenticate.override(providers.Object(RevokedEverything())):
        assert_error(api.client.get("/v1/sessions", headers=api.app), 401, "unauthorized")
    assert api.client.get("/v1/sessions", headers=api.app).status_code == 200


def test_unknown_routes_and_methods_answer_in_the_envelope(api: Api) -> None:
    assert_error(api.client.get("/v1/nothing-here", headers=api.app), 404, "not_found")
    assert_error(api.client.get("/v1/nothing-here"), 404, "not_found")
    wrong_method = api.client.delete("/v1/sessions", headers=api.app)
    assert_error(wrong_method, 405, "method_not_allowed")
    assert set(wrong_method.headers["allow"].replace(" ", "").split(",")) >= {"GET", "POST"}


def test_a_body_that_is_missing_or_not_an_object_names_the_body(api: Api) -> None:
    for path in ("/v1/sessions", "/v1/events/batch"):
        assert invalid_fields(api.client.post(path, headers=api.app)) == ["body"]
        assert invalid_fields(api.client.post(path, json=[], headers=api.app)) == ["body"]


def test_health_says_whether_the_storage_answers(api: Api) -> None:
    assert api.client.get("/health").json() == {"status": "ok"}

    class Unreachable:
        async def ping(self) -> None:
            raise ConnectionError("storage is down")

    class DownStorage:
        health = Unreachable()

    with api.container.storage.backend.override(providers.Object(DownStorage())):
        assert_error(api.client.get("/health"), 503, "unavailable")


def test_an_unexpected_failure_is_a_500_without_a_trace(api: Api) -> None:
    class Broken(GetSession):
        async def __call__(self, *_: Any) -> Any:
            raise RuntimeError("secret internals")

    with api.container.use_cases.get_session.override(providers.Object(Broken(sessions=None))):  # type: ignore[arg-type]
        response = api.client.get(f"/v1/sessions/{api.start()['id']}", headers=api.app)

    body = assert_error(response, 500, "internal_error")
    assert "secret internals" not in response.text and "fields" not in body


def test_a_storage_failure_or_a_contended_change_is_a_503_to_send_again(api: Api) -> None:
    """Both are passing: the client is told when to send the same request again, and nothing of
    the store's own words (a host, a table) reaches it."""
    session_id = api.start()["id"]
    for failure, wait in (
        (StorageError("could not connect to db.internal:5432"), "5"),
        (Contended(f"session {session_id} changed too often to be updated; retry"), "1"),
    ):
        with api.container.use_cases.get_session.override(providers.Object(failing(failure))):
            response = api.client.get(f"/v1/sessions/{session_id}", headers=api.app)

        assert_error(response, 503, "unavailable")
        assert response.headers["Retry-After"] == wait
        assert "db.internal" not in response.text


def failing(failure: Exception) -> GetSession:
    class Failing(GetSession):
        async def __call__(self, *_: Any) -> Any:
            raise failure

    return Failing(sessions=None)  # type: ignore[arg-type]


def test_the_openapi_schema_documents_the_contract(api: Api) -> None:
    response = api.client.get("/schema/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["info"] == {"title": "sessionmeter", "version": version("sessionmeter")}
    assert api.client.get("/schema").status_code == 200
    assert {"/v1/sessions", "/v1/sessions/{session_id}/exit", "/v1/events/batch", "/health"} <= set(
        schema["paths"]
    )
    start = schema["paths"]["/v1/sessions"]["post"]
    assert "requestBody" in start


def test_a_typo_in_a_configuration_body_is_named_not_ignored(api: Api) -> None:
    """A misspelt setting would otherwise be dropped without a word (the tenant believes it set
    an idle timeout it never did)."""
    cases = [
        ("put", "/v1/settings", {"idle_timeout_second": 60}, "idle_timeout_second"),
        ("put", "/v1/rates/counseling", {"credits_per_minute": 2, "roundng": "ceil"}, "roundng"),
        (
            "post",
            "/v1/accounts/ana/credits/grants",
            {"amount": 5, "reason": "r", "idempotency_key": "k", "expires": 1},
            "expires",
        ),
        (
            "put",
            "/v1/plans/free",
            {"limits": {"sessions_per_resourse": 2}},
            "limits.sessions_per_resourse",
        ),
        ("put", "/v1/accounts/ana/subscription", {"plan_id": "free", "ends": "x"}, "ends"),
        ("post", "/v1/keys", {"role": "app", "resource": "kiosk-1"}, "resource"),
    ]
    for method, path, body, field in cases:
        response = getattr(api.client, method)(path, json=body, headers=api.admin)
        assert invalid_fields(response) == [field], (path, response.text)
