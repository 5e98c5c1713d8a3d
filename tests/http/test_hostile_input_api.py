"""Input a database would choke on is refused as invalid, on every backend, never a 500."""

from tests.app_client import Api
from tests.http.envelope import invalid_fields

AT = "2026-11-24T12:00:00Z"


def test_nul_characters_in_text_are_invalid_input(api: Api) -> None:
    for field in ("resource_id", "subject_id", "kind"):
        body = {"kind": "webinar", "resource_id": "w", "subject_id": "u", field: "a\u0000b"}
        response = api.client.post("/v1/sessions", json=body, headers=api.ingest)
        assert invalid_fields(response) == [field]
    session = api.start()
    exit = api.client.post(
        f"/v1/sessions/{session['id']}/exit", json={"reason": "gone\u0000"}, headers=api.ingest
    )
    assert invalid_fields(exit) == ["reason"]


def test_events_with_numbers_or_text_no_database_holds_are_rejected_alone(api: Api) -> None:
    session = api.start()
    events = [
        {"session_id": session["id"], "sequence_no": 2**63, "type": "tap", "at": AT},
        {"session_id": session["id"], "sequence_no": 1, "type": "t\u0000p", "at": AT},
        {"session_id": session["id"], "sequence_no": 2, "type": "tap", "at": AT, "label": "\u0000"},
        {"session_id": session["id"], "sequence_no": 3, "type": "tap", "at": AT},
    ]

    response = api.client.post("/v1/events/batch", json={"events": events}, headers=api.ingest)

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["inserted"], body["failed"]) == (1, 3)
    assert [e["index"] for e in body["errors"]] == [0, 1, 2]
