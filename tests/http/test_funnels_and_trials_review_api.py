"""Hostile review of funnels, plans and trials through the API: each documented bound at its
edge and one past it, ids no store can hold, and tenant isolation of what a plan counts."""

from typing import Any

import pytest

from tests.app_client import Api
from tests.http.envelope import assert_error, invalid_fields

FREE = {
    "default": True,
    "limits": {"sessions_per_resource": 1, "session_kinds": ["practice"], "resources_per_month": 1},
}
TWO_STAGES = [
    {"name": "frame", "match": {"type": "screen_enter", "label": "frame"}},
    {"name": "capture", "match": {"type": "capture"}},
]


def put_plan(api: Api, plan_id: str, body: dict[str, Any]) -> Any:
    return api.client.put(f"/v1/plans/{plan_id}", json=body, headers=api.admin)


def register(api: Api, subject_id: str, resource_id: str = "pdf-1") -> Any:
    return api.client.post(
        f"/v1/accounts/{subject_id}/resources",
        json={"resource_id": resource_id, "kind": "pdf"},
        headers=api.admin,
    )


def test_a_subject_id_longer_than_200_characters_is_a_422_when_registering(api: Api) -> None:
    """Found by the review: registering did not bound the subject's id as the other routes do
    (stored on memory, SQLite and MongoDB; a 500 on PostgreSQL, varchar(200))."""
    assert register(api, "s" * 200).status_code == 201

    assert invalid_fields(register(api, "s" * 201)) == ["subject_id"]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/plans/" + "p" * 65, {}, "plan_id"),
        ("/v1/plans/p", {"limits": {"sessions_per_resource": 10**9 + 1}}, "limits.sessions_per_resource"),
        ("/v1/plans/p", {"limits": {"resources_per_month": 10**9 + 1}}, "limits.resources_per_month"),
        ("/v1/plans/p", {"limits": {"resources_per_month": 2**63}}, "limits.resources_per_month"),
        ("/v1/plans/p", {"limits": {"session_kinds": ["k" * 65]}}, "limits.session_kinds"),
        ("/v1/funnels/" + "f" * 65, {"kind": "kiosk", "stages": TWO_STAGES}, "name"),
        ("/v1/funnels/f", {"kind": "kiosk", "stages": [{"name": "s" * 65, "match": {"type": "t"}},
                                                       TWO_STAGES[1]]}, "stages[0].name"),
        ("/v1/funnels/f", {"kind": "kiosk", "stages": [{"name": "a", "match": {"type": "t", "label": "l" * 65}},
                                                       TWO_STAGES[1]]}, "stages[0].match.label"),
        ("/v1/funnels/f", {"kind": "kiosk", "stages": [{"name": "a", "match": {"type": "t", "category": ""}},
                                                       TWO_STAGES[1]]}, "stages[0].match.category"),
    ],
)  # fmt: skip
def test_one_past_each_bound_of_plans_and_funnels_is_a_422_naming_it(
    api: Api, path: str, body: dict[str, Any], field: str
) -> None:
    assert invalid_fields(api.client.put(path, json=body, headers=api.admin)) == [field]


def test_plans_and_funnels_at_each_bound_are_taken_and_read_back(api: Api) -> None:
    biggest = {
        "limits": {
            "sessions_per_resource": 10**9,
            "session_kinds": ["k" * 64],
            "resources_per_month": 10**9,
        }
    }
    stages = [
        {"name": "s" * 64, "match": {"type": "t" * 64, "label": "l" * 64, "category": "c" * 64}},
        *({"name": f"s{n}", "match": {"type": "t"}} for n in range(19)),
    ]
    funnel = {"kind": "k" * 64, "stages": stages}

    assert put_plan(api, "p" * 64, biggest).status_code == 200
    assert (
        api.client.put("/v1/funnels/" + "f" * 64, json=funnel, headers=api.admin).status_code == 200
    )

    plan = api.client.get("/v1/plans/" + "p" * 64, headers=api.admin).json()
    read = api.client.get("/v1/funnels/" + "f" * 64, headers=api.admin).json()
    report = api.client.get("/v1/reports/funnel/" + "f" * 64, headers=api.admin)
    assert plan["limits"] == biggest["limits"]
    assert read["stages"] == stages and read["kind"] == "k" * 64
    assert report.status_code == 200 and len(report.json()["stages"]) == 20


def test_another_tenants_sessions_and_resources_never_count_toward_a_plan(api: Api) -> None:
    """Acme and globex each have a subject mina on pdf-1; globex's use is not acme's."""
    assert put_plan(api, "free", FREE).status_code == 200
    other_admin = api.other_tenant  # globex's app key: enough to start and register
    started = api.client.post(
        "/v1/sessions",
        json={"kind": "practice", "resource_id": "pdf-1", "subject_id": "mina"},
        headers=other_admin,
    )
    registered = api.client.post(
        "/v1/accounts/mina/resources",
        json={"resource_id": "pdf-9", "kind": "pdf"},
        headers=other_admin,
    )
    assert (started.status_code, registered.status_code) == (201, 201), registered.text

    status = api.client.get("/v1/accounts/mina/resources/pdf-1/trial-status", headers=api.app)
    limits = api.client.get("/v1/accounts/mina/limits", headers=api.app).json()

    assert (status.json()["sessions_used"], status.json()["can_start_session"]) == (0, True)
    assert (limits["resources_this_month"], limits["can_register_resource"]) == (0, True)
    assert register(api, "mina").status_code == 201
    api.start(kind="practice", resource_id="pdf-1", subject_id="mina")
    second = api.client.post(
        "/v1/sessions",
        json={"kind": "practice", "resource_id": "pdf-1", "subject_id": "mina"},
        headers=api.app,
    )
    assert_error(second, 402, "trial_exhausted")
    # Globex has no plan: its mina is limited by nothing, whatever acme's refused.
    again = api.client.post(
        "/v1/sessions",
        json={"kind": "practice", "resource_id": "pdf-1", "subject_id": "mina"},
        headers=other_admin,
    )
    assert again.status_code == 201
