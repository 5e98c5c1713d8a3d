"""The app builds each use case once and hands it to every request
(entrypoints/http/built_use_cases.py), and builds it again once a provider of its graph is
overridden, or its override reset, so an override still applies at the next request."""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from dependency_injector import containers, providers

from entrypoints.http.built_use_cases import BuiltUseCases
from tests.app_client import Api
from tests.fakes import FakeClock
from tests.http.test_dependencies_in_order import on_memory


@dataclass(frozen=True)
class Said:
    words: str


@dataclass(frozen=True)
class Speak:
    said: Said


class Outside(containers.DeclarativeContainer):
    said = providers.Factory(Said, words="hello")


class UseCases(containers.DeclarativeContainer):
    outside = providers.DependenciesContainer()
    speak = providers.Factory(Speak, said=outside.said)


@pytest.fixture
def container() -> Any:
    outside = Outside()
    return UseCases(outside=outside), outside


def test_a_use_case_is_built_once_for_every_request(container: Any) -> None:
    use_cases, _ = container
    built = BuiltUseCases({"speak": use_cases.speak})

    assert built.get("speak") is built.get("speak")


def test_a_use_case_is_built_again_when_a_provider_of_its_graph_is_overridden(
    container: Any,
) -> None:
    use_cases, outside = container
    built = BuiltUseCases({"speak": use_cases.speak})
    before = built.get("speak")

    with outside.said.override(providers.Object(Said("bye"))):
        during = built.get("speak")
        assert during.said.words == "bye"
        assert built.get("speak") is during
    after = built.get("speak")

    assert before.said.words == after.said.words == "hello"
    assert after is not before  # built again once the override was reset


def test_a_use_case_is_built_again_when_an_override_is_replaced(container: Any) -> None:
    use_cases, outside = container
    built = BuiltUseCases({"speak": use_cases.speak})
    outside.said.override(providers.Object(Said("one")))
    assert built.get("speak").said.words == "one"

    outside.said.override(providers.Object(Said("two")))

    assert built.get("speak").said.words == "two"


@on_memory
def test_a_clock_overridden_between_requests_dates_the_next_one(api: Api) -> None:
    this_year = f"{datetime.now(UTC).year}-"
    first = api.start()
    api.container.outside.clock.override(
        providers.Object(FakeClock(datetime(2031, 5, 1, tzinfo=UTC)))
    )
    try:
        second = api.start(subject_id="user-2")
    finally:
        api.container.outside.clock.reset_override()
    third = api.start(subject_id="user-3")

    assert first["started_at"].startswith(this_year), first
    assert second["started_at"].startswith("2031-05-01"), second
    assert third["started_at"].startswith(this_year), third
