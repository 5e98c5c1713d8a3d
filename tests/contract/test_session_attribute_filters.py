"""SessionRepository contract: listing filtered by attribute values (declared dimensions), on
every store, spelled as domain.rollups.dimensions_of spells them."""

from typing import Any

import pytest

from application.sessions.ports import SessionFilter, SessionPosition
from domain.tenants import Tenant
from tests.contract.builders import add_tenant, stored_session

pytestmark = pytest.mark.anyio


async def ids(storage: Any, tenant: Tenant, **attributes: str) -> list[str]:
    where = SessionFilter(attributes=attributes)
    return [s.id for s in await storage.sessions.find(tenant.id, where, limit=50)]


async def test_a_string_attribute_matches_exactly(storage: Any, tenant: Tenant) -> None:
    s12 = await stored_session(storage, tenant, minutes=1, attributes={"store_id": "S12"})
    await stored_session(storage, tenant, minutes=2, attributes={"store_id": "S1"})
    await stored_session(storage, tenant, minutes=3, attributes={"store_id": "s12"})
    await stored_session(storage, tenant, minutes=4, attributes={"other": "S12"})
    globex = await add_tenant(storage, "globex")
    await stored_session(storage, globex, minutes=5, attributes={"store_id": "S12"})

    assert await ids(storage, tenant, store_id="S12") == [s12.id]
    assert await ids(storage, tenant, store_id="S") == []


async def test_numbers_and_booleans_match_as_json_spells_them(storage: Any, tenant: Tenant) -> None:
    seven = await stored_session(storage, tenant, minutes=1, attributes={"lane": 7})
    text_seven = await stored_session(storage, tenant, minutes=2, attributes={"lane": "7"})
    half = await stored_session(storage, tenant, minutes=3, attributes={"lane": 1.5})
    beta = await stored_session(storage, tenant, minutes=4, attributes={"beta": True})
    stable = await stored_session(storage, tenant, minutes=5, attributes={"beta": False})

    # The text "7" and the number 7 spell alike, as in a report's groups.
    assert await ids(storage, tenant, lane="7") == [text_seven.id, seven.id]
    assert await ids(storage, tenant, lane="1.5") == [half.id]
    assert await ids(storage, tenant, beta="true") == [beta.id]
    assert await ids(storage, tenant, beta="false") == [stable.id]
    assert await ids(storage, tenant, beta="True") == []
    assert await ids(storage, tenant, beta="1") == []


async def test_every_filter_must_match(storage: Any, tenant: Tenant) -> None:
    both = await stored_session(
        storage, tenant, minutes=1, attributes={"store_id": "S1", "country": "KR"}
    )
    await stored_session(storage, tenant, minutes=2, attributes={"store_id": "S1", "country": "JP"})
    await stored_session(storage, tenant, minutes=3, attributes={"store_id": "S2", "country": "KR"})
    await stored_session(storage, tenant, minutes=4, attributes={"store_id": "S1"})

    assert await ids(storage, tenant, store_id="S1", country="KR") == [both.id]
    assert len(await ids(storage, tenant, store_id="S1")) == 3


async def test_a_session_without_the_attribute_never_matches(storage: Any, tenant: Tenant) -> None:
    await stored_session(storage, tenant, minutes=1, attributes={})
    await stored_session(storage, tenant, minutes=2, attributes={"country": "KR"})

    # Not even the spellings a missing value might take.
    for missing in ("", "null", "None", "undefined"):
        assert await ids(storage, tenant, store_id=missing) == []


async def test_a_value_that_looks_like_a_field_or_operator_is_plain_text(
    storage: Any, tenant: Tenant
) -> None:
    dollar = await stored_session(storage, tenant, minutes=1, attributes={"store_id": "$kind"})
    # Were a value read as a field path, "$kind" would match this one (store_id == kind) and
    # "$store_id" every session with a store_id.
    await stored_session(
        storage, tenant, minutes=2, kind="practice", attributes={"store_id": "practice"}
    )

    assert await ids(storage, tenant, store_id="$kind") == [dollar.id]
    assert await ids(storage, tenant, store_id="$store_id") == []
    assert await ids(storage, tenant, store_id="' OR '1'='1") == []


async def test_attribute_filters_combine_with_the_other_filters(
    storage: Any, tenant: Tenant
) -> None:
    practice = await stored_session(
        storage, tenant, minutes=1, kind="practice", attributes={"store_id": "S1"}
    )
    await stored_session(storage, tenant, minutes=2, attributes={"store_id": "S1"})

    where = SessionFilter(kind="practice", attributes={"store_id": "S1"})
    found = await storage.sessions.find(tenant.id, where, limit=10)

    assert [s.id for s in found] == [practice.id]


async def test_pages_of_a_filtered_listing_continue_without_repeats(
    storage: Any, tenant: Tenant
) -> None:
    matching = []
    for i in range(9):
        store = "S1" if i % 3 else "S2"
        session = await stored_session(
            storage, tenant, minutes=i // 2, attributes={"store_id": store}
        )
        if store == "S1":
            matching.append(session)
    expected = [s.id for s in sorted(matching, key=lambda s: (s.started_at, s.id), reverse=True)]
    where = SessionFilter(attributes={"store_id": "S1"})

    seen: list[str] = []
    after = None
    while True:
        page = await storage.sessions.find(tenant.id, where, limit=4, after=after)
        seen += [s.id for s in page]
        if len(page) < 4:
            break
        after = SessionPosition(page[-1].started_at, page[-1].id)

    assert len(expected) == 6
    assert seen == expected
