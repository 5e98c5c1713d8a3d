"""The sessions list over HTTP filtered by declared dimensions: `?attributes.<key>=<value>`."""

from typing import Any

from tests.app_client import Api
from tests.http.envelope import invalid_fields


def declare(api: Api, *dimensions: str) -> None:
    put = api.client.put("/v1/settings", json={"dimensions": list(dimensions)}, headers=api.admin)
    assert put.status_code == 200, put.text


def listed(api: Api, **params: Any) -> Any:
    return api.client.get("/v1/sessions", params=params, headers=api.app)


def ids(api: Api, **params: Any) -> list[str]:
    response = listed(api, **params)
    assert response.status_code == 200, response.text
    return [s["id"] for s in response.json()["items"]]


def test_declared_dimensions_filter_the_list(api: Api) -> None:
    declare(api, "store_id", "lane", "beta")
    s12 = api.start(attributes={"store_id": "S12", "lane": 7, "beta": True})
    s1 = api.start(attributes={"store_id": "S1", "lane": 7, "beta": False})
    half = api.start(attributes={"lane": 1.5})

    assert ids(api, **{"attributes.store_id": "S12"}) == [s12["id"]]
    assert sorted(ids(api, **{"attributes.lane": "7"})) == sorted([s12["id"], s1["id"]])
    assert ids(api, **{"attributes.lane": "7", "attributes.beta": "false"}) == [s1["id"]]
    assert ids(api, **{"attributes.store_id": "S12", "attributes.beta": "false"}) == []
    assert ids(api, **{"attributes.lane": "1.5"}) == [half["id"]]
    assert ids(api, **{"attributes.store_id": "S99"}) == []


def test_an_attribute_filter_pages_with_its_cursor(api: Api) -> None:
    declare(api, "store_id")
    mine = {api.start(attributes={"store_id": "S1"})["id"] for _ in range(3)}
    api.start(attributes={"store_id": "S2"})

    first = listed(api, limit=2, **{"attributes.store_id": "S1"}).json()
    rest = listed(api, limit=2, cursor=first["next_cursor"], **{"attributes.store_id": "S1"}).json()

    assert first["next_cursor"] is not None and rest["next_cursor"] is None
    assert {s["id"] for s in first["items"] + rest["items"]} == mine
    assert len(first["items"]) + len(rest["items"]) == 3


def test_an_undeclared_key_is_a_422_naming_it_and_the_allowed_ones(api: Api) -> None:
    api.start(attributes={"country": "KR"})

    nothing_declared = listed(api, **{"attributes.country": "KR"})
    assert invalid_fields(nothing_declared) == ["attributes.country"]

    declare(api, "store_id", "group_id")
    refused = listed(api, **{"attributes.store_id": "S1", "attributes.country": "KR"})
    assert invalid_fields(refused) == ["attributes.country"]
    assert "store_id" in refused.text and "group_id" in refused.text


def test_the_list_description_documents_the_attribute_filters(api: Api) -> None:
    schema = api.client.get("/schema/openapi.json").json()
    description = schema["paths"]["/v1/sessions"]["get"]["description"]
    assert "attributes.<key>=<value>" in description
