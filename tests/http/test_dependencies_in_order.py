"""A handler's dependencies are resolved one after the other, never in a task group
(entrypoints/http/dependencies_in_order.py): each group cost a fifth of a start's and an exit's
CPU. An exit needs three (the caller, its use case, the metrics), all of one level."""

from typing import Any, NoReturn

import pytest
from litestar._kwargs import kwargs_model

from tests.app_client import Api

on_memory = pytest.mark.parametrize("storage_url", ["memory"], indirect=True)


@on_memory
def test_a_session_starts_and_exits_without_a_task_group_for_its_dependencies(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_task_group(*_: Any) -> NoReturn:
        raise AssertionError("dependencies resolved in a task group")

    monkeypatch.setattr(kwargs_model, "create_task_group", no_task_group)
    session = api.start()
    exited = api.client.post(f"/v1/sessions/{session['id']}/exit", headers=api.app)
    assert exited.status_code == 200, exited.text
    assert exited.json()["status"] == "completed"
