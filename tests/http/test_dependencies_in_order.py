"""A handler's dependencies are resolved one after the other, never in a task group
(entrypoints/http/dependencies_in_order.py): each group cost a fifth of a start's and an exit's
CPU (which are now called directly, entrypoints/http/called_directly.py). A session's read needs
two (the caller, its use case), of one level."""

from typing import Any, NoReturn

import pytest
from litestar._kwargs import kwargs_model

from tests.app_client import Api

on_memory = pytest.mark.parametrize("storage_url", ["memory"], indirect=True)


@on_memory
def test_a_session_is_read_without_a_task_group_for_its_dependencies(
    api: Api, monkeypatch: pytest.MonkeyPatch, kwargs_built: list[str]
) -> None:
    def no_task_group(*_: Any) -> NoReturn:
        raise AssertionError("dependencies resolved in a task group")

    session = api.start()
    monkeypatch.setattr(kwargs_model, "create_task_group", no_task_group)
    read = api.client.get(f"/v1/sessions/{session['id']}", headers=api.app)
    assert read.status_code == 200, read.text
    assert read.json()["status"] == "active"
    assert kwargs_built == [f"/v1/sessions/{session['id']}"]  # through Litestar's resolution
