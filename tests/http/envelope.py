"""Assertions on the error envelope every 4xx and 5xx carries."""

from typing import Any


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    """The contract's envelope: a code and a sentence, never a trace."""
    assert response.status_code == status, response.text
    body = dict(response.json())
    assert body["error"] == code
    assert isinstance(body["detail"], str) and body["detail"]
    assert "Traceback" not in response.text
    return body


def invalid_fields(response: Any) -> list[str]:
    body = assert_error(response, 422, "validation_error")
    return [f["field"] for f in body["fields"]]
