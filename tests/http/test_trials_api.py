"""Plans, subscriptions, resources and trial status through the API."""

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.app_client import Api
from tests.http.envelope import assert_error, invalid_fields

FREE = {
    "default": True,
    "limits": {"sessions_per_resource": 1, "session_kinds": ["practice"], "resources_per_month": 1},
}


def put_plan(api: Api, plan_id: str, body: dict[str, Any]) -> Any:
    return api.client.put(f"/v1/plans/{plan_id}", json=body, headers=api.admin)


def test_limits_and_trial_status_describe_the_subjects_plan(api: Api) -> None:
    assert put_plan(api, "free", FREE).json()["limits"]["session_kinds"] == ["practice"]
    registered = api.client.post(
        "/v1/accounts/mina/resources",
        json={"resource_id": "pdf-1", "kind": "pdf"},
        headers=api.admin,
    )
    replay = api.client.post(
        "/v1/accounts/mina/resources",
        json={"resource_id": "pdf-1", "kind": "pdf"},
        headers=api.admin,
    )
    api.start(kind="practice", resource_id="pdf-1", subject_id="mina")

    limits = api.client.get("/v1/accounts/mina/limits", headers=api.admin).json()
    status = api.client.get(
        "/v1/accounts/mina/resources/pdf-1/trial-status", headers=api.admin
    ).json()

    assert (registered.status_code, replay.status_code) == (201, 200)
    assert limits == {
        "plan_id": "free",
        "unlimited": False,
        "sessions_per_resource": 1,
        "resources_per_month": 1,
        "resources_this_month": 1,
        "can_register_resource": False,
        "subscription_ends_at": None,
    }
    assert status == {
        "resource_id": "pdf-1",
        "is_free_trial": True,
        "sessions_used": 1,
        "sessions_remaining": 0,
        "can_start_session": False,
        "requires_upgrade": True,
    }


def test_the_limited_start_is_a_402_with_the_trial_status(api: Api) -> None:
    put_plan(api, "free", FREE)
    api.start(kind="practice", resource_id="pdf-1", subject_id="mina")

    refused = api.client.post(
        "/v1/sessions",
        json={"kind": "practice", "resource_id": "pdf-1", "subject_id": "mina"},
        headers=api.app,
    )

    body = assert_error(refused, 402, "trial_exhausted")
    assert body["trial_status"]["sessions_remaining"] == 0 and "upgrade_url" in body
    anonymous = api.client.post(
        "/v1/sessions",
        json={"kind": "practice", "resource_id": "pdf-1", "client_key": "tab"},
        headers=api.app,
    )
    assert anonymous.status_code == 201


def test_a_subscription_lifts_limits_until_it_ends(api: Api) -> None:
    put_plan(api, "free", FREE)
    put_plan(api, "pass", {"unlimited": True})
    ends = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    subscribed = api.client.put(
        "/v1/accounts/jun/subscription",
        json={"plan_id": "pass", "ends_at": ends},
        headers=api.admin,
    )

    assert subscribed.status_code == 200 and subscribed.json()["plan_id"] == "pass"
    for _ in range(3):
        api.start(kind="practice", resource_id="pdf-1", subject_id="jun")
    limits = api.client.get("/v1/accounts/jun/limits", headers=api.admin).json()
    assert limits["unlimited"] and limits["subscription_ends_at"] is not None


def test_bad_plan_and_subscription_input_names_the_field(api: Api) -> None:
    assert invalid_fields(put_plan(api, "bad id!", {})) == ["plan_id"]
    assert invalid_fields(put_plan(api, "p", {"limits": {"sessions_per_resource": -1}})) == [
        "limits.sessions_per_resource"
    ]
    assert invalid_fields(put_plan(api, "p", {"limits": {"session_kinds": ["Bad Kind"]}})) == [
        "limits.session_kinds"
    ]
    ends = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert invalid_fields(
        api.client.put(
            "/v1/accounts/u/subscription",
            json={"plan_id": "nope", "ends_at": ends},
            headers=api.admin,
        )
    ) == ["plan_id"]
    assert invalid_fields(
        api.client.put(
            "/v1/accounts/u/subscription",
            json={"plan_id": "p", "ends_at": "2027-01-01T00:00:00"},
            headers=api.admin,
        )
    ) == ["ends_at"]
    assert invalid_fields(
        api.client.post(
            "/v1/accounts/u/resources", json={"resource_id": "r", "kind": "A B"}, headers=api.admin
        )
    ) == ["kind"]


def test_over_the_monthly_quota_a_resource_is_a_402(api: Api) -> None:
    put_plan(api, "free", FREE)
    api.client.post(
        "/v1/accounts/u/resources", json={"resource_id": "a", "kind": "pdf"}, headers=api.admin
    )

    refused = api.client.post(
        "/v1/accounts/u/resources", json={"resource_id": "b", "kind": "pdf"}, headers=api.admin
    )

    body = assert_error(refused, 402, "quota_exceeded")
    assert body["limits"] == {"resources_per_month": 1, "resources_this_month": 1}


def test_plans_are_set_by_admins_and_limits_read_by_back_ends(api: Api) -> None:
    assert_error(api.client.put("/v1/plans/free", json=FREE, headers=api.app), 403, "forbidden")
    assert_error(api.client.get("/v1/accounts/u/limits", headers=api.ingest), 403, "forbidden")
    assert api.client.get("/v1/accounts/u/limits", headers=api.app).status_code == 200


def test_a_settings_change_applies_at_once_to_keys_already_in_use(api: Api) -> None:
    put_plan(api, "free", FREE)
    api.start(kind="practice", resource_id="pdf-1", subject_id="mina")  # the key is now cached
    api.client.put("/v1/settings", json={"upgrade_url": "https://x.example/up"}, headers=api.admin)

    refused = api.client.post(
        "/v1/sessions",
        json={"kind": "practice", "resource_id": "pdf-1", "subject_id": "mina"},
        headers=api.app,
    )

    assert assert_error(refused, 402, "trial_exhausted")["upgrade_url"] == "https://x.example/up"


def test_an_admin_reads_back_the_plans_and_one_plan(api: Api) -> None:
    put_plan(api, "free", FREE)
    put_plan(api, "pass", {"unlimited": True})

    plans = api.client.get("/v1/plans", headers=api.admin)
    one = api.client.get("/v1/plans/pass", headers=api.admin)

    assert plans.status_code == 200
    assert [(p["plan_id"], p["default"]) for p in plans.json()["items"]] == [
        ("free", True),
        ("pass", False),
    ]
    assert plans.json()["items"][0]["limits"] == FREE["limits"]
    assert one.json() == {
        "plan_id": "pass",
        "default": False,
        "unlimited": True,
        "limits": {"sessions_per_resource": None, "session_kinds": [], "resources_per_month": None},
    }
    assert_error(api.client.get("/v1/plans/gold", headers=api.admin), 404, "not_found")


def test_the_subscription_history_is_newest_first_with_when_each_was_set(api: Api) -> None:
    put_plan(api, "free", FREE)
    put_plan(api, "pass", {"unlimited": True})
    for plan_id, ends_at in (("pass", "2027-01-31T00:00:00Z"), ("free", "2027-03-01T00:00:00Z")):
        response = api.client.put(
            "/v1/accounts/mina/subscription",
            json={"plan_id": plan_id, "ends_at": ends_at},
            headers=api.admin,
        )
        assert response.status_code == 200, response.text

    history = api.client.get("/v1/accounts/mina/subscriptions", headers=api.admin)
    nobody = api.client.get("/v1/accounts/nobody/subscriptions", headers=api.admin)

    assert history.status_code == 200
    items = history.json()["items"]
    assert [(i["plan_id"], i["ends_at"], i["number"]) for i in items] == [
        ("free", "2027-03-01T00:00:00Z", 2),
        ("pass", "2027-01-31T00:00:00Z", 1),
    ]
    assert all(i["subject_id"] == "mina" and i["set_at"].endswith("Z") for i in items)
    # As instants: an instant on a whole second is written without a fraction, so as text
    # "…15Z" sorts after "…15.037000Z".
    assert datetime.fromisoformat(items[0]["set_at"]) >= datetime.fromisoformat(items[1]["set_at"])
    assert nobody.json() == {"items": [], "next_cursor": None}


def test_plans_and_subscriptions_are_read_back_with_an_admin_key_only(api: Api) -> None:
    put_plan(api, "free", FREE)
    for path in ("/v1/plans", "/v1/plans/free", "/v1/accounts/mina/subscriptions"):
        for headers in (api.app, api.ingest):
            assert_error(api.client.get(path, headers=headers), 403, "forbidden")
        assert_error(api.client.get(path), 401, "unauthorized")
