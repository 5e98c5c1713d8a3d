"""A hostile review of pagination, through the real app on every API backend.

API.md: "Lists are cursor-paginated: `?limit=` (default 50, max 500) and `?cursor=`; the body is
`{"items": [...], "next_cursor": "…" | null}`". Every walk here checks that each item is listed
exactly once, in the documented order, with full pages until `next_cursor` is null on the page
that ends the list (never one empty page later); ties on the sort key are made on purpose.
"""

import base64
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from dependency_injector import providers

from application.tenants.create_api_key import CreateApiKeyCommand
from tests.app_client import Api
from tests.fakes import FakeClock
from tests.http.envelope import invalid_fields

Item = dict[str, Any]
# Half an hour before the tests began, to the millisecond: never in the future, never late.
BASE = datetime.now(UTC).replace(microsecond=123_000) - timedelta(minutes=30)
SAME_MS = [  # one instant written five ways: finer digits are truncated, offsets converted
    BASE.strftime("%Y-%m-%dT%H:%M:%S.123Z"),
    BASE.strftime("%Y-%m-%dT%H:%M:%S.123456Z"),
    BASE.strftime("%Y-%m-%dT%H:%M:%S.123999Z"),
    BASE.astimezone(datetime.now(UTC).astimezone().tzinfo).isoformat(),
    (BASE + timedelta(hours=9)).strftime("%Y-%m-%dT%H:%M:%S.123+09:00"),
]
# Ids a client may choose for errors and sales (1-200 characters of any text): case, spaces,
# punctuation and letters outside ASCII, which stores and collations order differently.
ODD_IDS = ["Zeta", "alpha", "B-2", "b1", "a b", "ab", "a-b", "A", "ñ", "Ω-1", "z", "0"]


def at(offset_ms: int) -> str:
    return (BASE + timedelta(milliseconds=offset_ms)).isoformat()


def cursor_of(position: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


def walk(api: Api, path: str, headers: dict[str, str], limit: int, **params: Any) -> list[Item]:
    """Every page of a listing, following next_cursor: full pages, then a last one that is not
    empty (unless the whole list is) and whose next_cursor is null."""
    items: list[Item] = []
    cursor: str | None = None
    for _ in range(500):
        asked = {"limit": limit, **params} | ({"cursor": cursor} if cursor else {})
        response = api.client.get(path, params=asked, headers=headers)
        assert response.status_code == 200, (path, asked, response.text)
        body = response.json()
        assert set(body) >= {"items", "next_cursor"}, body
        cursor = body["next_cursor"]
        if cursor is None:
            assert body["items"] or not items, f"{path}: an empty page after a next_cursor"
            return items + list(body["items"])
        assert len(body["items"]) == limit, f"{path}: a short page with a next_cursor"
        items += body["items"]
    raise AssertionError(f"{path}: no end after 500 pages")


def one_page(api: Api, path: str, headers: dict[str, str], **params: Any) -> list[Item]:
    response = api.client.get(path, params={"limit": 500, **params}, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["next_cursor"] is None
    return list(response.json()["items"])


def once_each(items: list[Item], key: str = "id") -> list[Any]:
    keys = [i[key] for i in items]
    assert len(keys) == len(set(keys)), (
        f"listed twice: {sorted(k for k in keys if keys.count(k) > 1)}"
    )
    return keys


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def walks_agree(
    api: Api, path: str, headers: dict[str, str], sort_key: str, newest_first: bool, **params: Any
) -> list[Item]:
    """Walks of every page size list what one page lists, in the same order, each once."""
    whole = one_page(api, path, headers, **params)
    once_each(whole)
    times = [instant(i[sort_key]) for i in whole]
    assert times == sorted(times, reverse=newest_first), f"{path}: not in {sort_key} order"
    for limit in (1, 2, 3, 4, len(whole) - 1, len(whole)):
        walked = walk(api, path, headers, limit, **params)
        assert once_each(walked) == [i["id"] for i in whole], (path, limit)
    return whole


# --- what the walks list -------------------------------------------------------------------


def start(api: Api, started_at: str, **body: Any) -> Item:
    return api.start(id=str(uuid.uuid4()), started_at=started_at, **body)


def an_error(id: str, when: str, **fields: Any) -> Item:
    return {
        "id": id,
        "at": when,
        "device_id": "kiosk-1",
        "app_version": "1.4.2",
        "severity": "error",
        "type": "PrinterError",
        "message": "paper jam",
        **fields,
    }


def a_sale(id: str, session_id: str, when: str) -> Item:
    return {
        "id": id,
        "session_id": session_id,
        "device_id": "kiosk-1",
        "occurred_at": when,
        "currency": "KRW",
        "amounts": {"gross": "20000", "discount": "2000", "tax": "0", "net": "18000"},
        "payment_method": "card",
        "status": "completed",
    }


def report_error(api: Api, body: Item, headers: dict[str, str] | None = None) -> None:
    response = api.client.post("/v1/errors", json=body, headers=headers or api.app)
    assert response.status_code == 201, response.text


def record_sale(api: Api, body: Item, headers: dict[str, str] | None = None) -> None:
    response = api.client.post("/v1/sales", json=body, headers=headers or api.app)
    assert response.status_code == 201, response.text


def grant(api: Api, subject: str, amount: int, headers: dict[str, str] | None = None) -> Item:
    body = {"amount": amount, "reason": "test", "idempotency_key": str(uuid.uuid4())}
    response = api.client.post(
        f"/v1/accounts/{subject}/credits/grants", json=body, headers=headers or api.admin
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def send_events(
    api: Api, session_id: str, numbers: list[int], headers: dict[str, str] | None = None
) -> None:
    events = [
        {
            "session_id": session_id,
            "sequence_no": n,
            "type": "tap" if n % 2 else "screen_enter",
            "label": "red" if n % 3 else "green",
            "at": at(n),
        }
        for n in numbers
    ]
    response = api.client.post(
        "/v1/events/batch", json={"events": events}, headers=headers or api.app
    )
    assert response.status_code == 200 and response.json()["inserted"] == len(numbers)


@dataclass
class Frozen:
    clock: FakeClock
    api: Api

    def __enter__(self) -> FakeClock:
        self.api.container.outside.clock.override(providers.Object(self.clock))
        return self.clock

    def __exit__(self, *_: object) -> None:
        self.api.container.outside.clock.reset_override()


def frozen(api: Api) -> Frozen:
    """Every write dated at one instant: ledger entries and alerts that tie on created_at."""
    return Frozen(FakeClock(datetime.now(UTC).replace(microsecond=456_000)), api)


# --- full walks over ties ------------------------------------------------------------------


def test_a_walk_of_sessions_started_in_one_millisecond_lists_each_once_newest_first(
    api: Api,
) -> None:
    """Sessions tie on started_at to the millisecond (written with finer digits and other
    offsets): the (started_at, id) order must break ties the same way on every page."""
    created = [start(api, when) for when in SAME_MS * 2]
    created += [start(api, at(1)), start(api, at(-1)), start(api, at(-1))]

    whole = walks_agree(api, "/v1/sessions", api.app, "started_at", newest_first=True)

    assert sorted(once_each(whole)) == sorted(s["id"] for s in created)
    assert {s["started_at"] for s in whole[1:11]} == {at(0).replace("+00:00", "Z")}


def test_a_walk_of_errors_reported_in_one_millisecond_lists_each_once_newest_first(
    api: Api,
) -> None:
    """Client-chosen ids of mixed case, punctuation and letters outside ASCII break the tie of
    errors reported in one millisecond."""
    for n, id in enumerate(ODD_IDS):
        report_error(api, an_error(id, SAME_MS[n % len(SAME_MS)]))
    report_error(api, an_error("later", at(1)))
    report_error(api, an_error("earlier", at(-1)))

    whole = walks_agree(api, "/v1/errors", api.app, "at", newest_first=True)
    filtered = walks_agree(api, "/v1/errors", api.app, "at", newest_first=True, device_id="kiosk-1")

    assert sorted(once_each(whole)) == sorted([*ODD_IDS, "later", "earlier"])
    assert once_each(filtered) == once_each(whole)


def test_a_walk_of_sales_made_in_one_millisecond_lists_each_once_newest_first(api: Api) -> None:
    """Sales tie on occurred_at; their client-chosen ids break the tie."""
    session = api.start()["id"]
    for n, id in enumerate(ODD_IDS):
        record_sale(api, a_sale(id, session, SAME_MS[n % len(SAME_MS)]))
    record_sale(api, a_sale("later", session, at(1)))

    whole = walks_agree(api, "/v1/sales", api.app, "occurred_at", newest_first=True)
    of_session = walks_agree(
        api, "/v1/sales", api.app, "occurred_at", newest_first=True, session_id=session
    )

    assert sorted(once_each(whole)) == sorted([*ODD_IDS, "later"])
    assert once_each(of_session) == once_each(whole)


def test_a_walk_of_a_ledger_written_in_one_millisecond_lists_each_entry_once_oldest_first(
    api: Api,
) -> None:
    """Grants written at one instant tie on created_at; the ledger's cursor is an entry's id,
    the order (created_at, id)."""
    with frozen(api) as clock:
        granted = [grant(api, "jun", n + 1)["id"] for n in range(9)]
        clock.advance(0.001)
        granted.append(grant(api, "jun", 100)["id"])
    grant(api, "someone-else", 5)

    whole = walks_agree(
        api, "/v1/accounts/jun/credits/ledger", api.app, "created_at", newest_first=False
    )

    assert sorted(once_each(whole)) == sorted(granted)
    assert whole[-1]["amount"] == 100


def test_a_walk_of_a_sessions_events_lists_each_once_in_sequence_order(api: Api) -> None:
    """Filtered by type and label or not, the events' walk lists each sequence number once, in
    order; events that arrive mid-walk behind the cursor (a gap filled late) are not listed
    again, and those ahead of it are listed."""
    session = api.start(started_at=at(-1000))["id"]
    send_events(api, session, [1, 2, 3, 5, 6, 8, 9, 10, 11, 12])
    path = f"/v1/sessions/{session}/events"

    for params in ({}, {"type": "tap"}, {"label": "red"}, {"type": "tap", "label": "red"}):
        whole = one_page(api, path, api.app, **params)
        numbers = once_each(whole, "sequence_no")
        assert numbers == sorted(numbers) and numbers
        for limit in (1, 2, 3, len(whole)):
            walked = walk(api, path, api.app, limit, **params)
            assert once_each(walked, "sequence_no") == numbers, (params, limit)

    first = api.client.get(path, params={"limit": 4}, headers=api.app).json()
    send_events(api, session, [4, 7, 13])  # 4 behind the cursor (at 5), 7 and 13 ahead of it
    rest: list[Item] = []
    cursor = first["next_cursor"]
    while cursor:
        page = api.client.get(path, params={"limit": 3, "cursor": cursor}, headers=api.app).json()
        rest += page["items"]
        cursor = page["next_cursor"]
    listed = once_each(first["items"] + rest, "sequence_no")
    assert listed == [1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13]


# --- writes while a walk is under way -------------------------------------------------------


def test_sessions_started_ended_or_deleted_during_a_walk_are_never_listed_twice_nor_skipped(
    api: Api,
) -> None:
    """Between two pages: a newer session starts, older ones are backdated into both the
    listed and the unlisted ranges, one is ended and the one the cursor points at is deleted
    with its resource. What was listed is not listed again; what existed and still exists is
    not skipped."""
    before = [start(api, at(-1000 * n), resource_id=f"r{n}") for n in range(8)]
    first = api.client.get("/v1/sessions", params={"limit": 3}, headers=api.app).json()
    assert [s["id"] for s in first["items"]] == [s["id"] for s in before[:3]]

    start(api, at(5_000))  # newer than every listed one
    start(api, at(-1_500))  # among those listed
    ahead = start(api, at(-5_500))  # among those not listed yet
    exited = api.client.post(f"/v1/sessions/{before[4]['id']}/exit", json={}, headers=api.app)
    assert exited.status_code == 200, exited.text
    deleted = api.client.delete("/v1/resources/r2", headers=api.admin)  # the cursor's session
    assert deleted.status_code == 200, deleted.text
    rest = walk(api, "/v1/sessions", api.app, 2, cursor=first["next_cursor"])

    listed = once_each(first["items"] + rest)
    assert [s["id"] for s in rest] == [
        before[3]["id"],
        before[4]["id"],
        before[5]["id"],
        ahead["id"],
        before[6]["id"],
        before[7]["id"],
    ]
    assert len(listed) == 9


def test_sessions_that_stop_matching_a_filter_during_a_walk_leave_the_others_unskipped(
    api: Api,
) -> None:
    """A status=active walk while sessions end: those still active are all listed, once."""
    before = [start(api, at(-1000 * n)) for n in range(7)]
    first = api.client.get(
        "/v1/sessions", params={"limit": 2, "status": "active"}, headers=api.app
    ).json()
    for gone in (before[1], before[3]):  # one listed, one not yet
        exited = api.client.post(f"/v1/sessions/{gone['id']}/exit", json={}, headers=api.app)
        assert exited.status_code == 200, exited.text
    rest = walk(api, "/v1/sessions", api.app, 2, status="active", cursor=first["next_cursor"])

    once_each(first["items"] + rest)
    assert [s["id"] for s in rest] == [before[n]["id"] for n in (2, 4, 5, 6)]


def test_errors_and_sales_recorded_during_a_walk_are_never_listed_twice_nor_skipped(
    api: Api,
) -> None:
    """New records that tie with the cursor's instant, with ids on either side of its id, and
    newer and older ones: nothing listed twice, nothing that existed skipped."""
    session = api.start()["id"]
    ids = ["m", "k", "i", "g", "e", "c"]  # newest first when they tie
    for id in ids:
        report_error(api, an_error(id, at(0)))
        record_sale(api, a_sale(id, session, at(0)))

    def add_error(id: str, when: str) -> None:
        report_error(api, an_error(id, when))

    def add_sale(id: str, when: str) -> None:
        record_sale(api, a_sale(id, session, when))

    for path, add in (("/v1/errors", add_error), ("/v1/sales", add_sale)):
        first = api.client.get(path, params={"limit": 2}, headers=api.app).json()
        assert [r["id"] for r in first["items"]] == ["m", "k"]  # the cursor is at ("k", at(0))
        for id, when in (("l", at(0)), ("j", at(0)), ("z", at(1)), ("a", at(-1))):
            add(id, when)
        rest = walk(api, path, api.app, 2, cursor=first["next_cursor"])

        listed = once_each(first["items"] + rest)
        assert listed == ["m", "k", "j", "i", "g", "e", "c", "a"], path


def test_ledger_entries_written_during_a_walk_are_never_listed_twice_nor_skipped(
    api: Api,
) -> None:
    """Grants written mid-walk at the cursor entry's own instant and later: the walk lists
    every earlier entry once and goes on to the later ones."""
    with frozen(api) as clock:
        before = [grant(api, "mina", n + 1)["id"] for n in range(6)]
        path = "/v1/accounts/mina/credits/ledger"
        first = api.client.get(path, params={"limit": 2}, headers=api.app).json()
        tied = [grant(api, "mina", 10 + n)["id"] for n in range(3)]
        clock.advance(1)
        later = grant(api, "mina", 50)["id"]
    rest = walk(api, path, api.app, 2, cursor=first["next_cursor"])

    listed = once_each(first["items"] + rest)
    assert set(before) <= set(listed) and listed[-1] == later
    assert set(listed) <= {*before, *tied, later}


# --- limits -------------------------------------------------------------------------------


@dataclass
class Routes:
    """One list route of each kind, each holding at least two items."""

    paths: dict[str, str]
    headers: dict[str, str]

    def __iter__(self) -> Iterator[str]:
        return iter(self.paths.values())


def seeded(api: Api, count: int = 3) -> Routes:
    session = api.start(started_at=at(-1000))["id"]
    send_events(api, session, list(range(1, count + 1)))
    for n in range(count):
        report_error(api, an_error(f"e{n}", at(-n)))
        record_sale(api, a_sale(f"s{n}", session, at(-n)))
        grant(api, "jun", n + 1)
    _two_alerts(api)
    return Routes(
        {
            "sessions": "/v1/sessions",
            "events": f"/v1/sessions/{session}/events",
            "errors": "/v1/errors",
            "sales": "/v1/sales",
            "ledger": "/v1/accounts/jun/credits/ledger",
            "alerts": "/v1/alerts",
        },
        api.admin,
    )


NOT_A_LIMIT = ["0", "-1", "501", "100000000000000000000", "abc", "1.5", "", " 1", "0x10", "true"]


def test_a_limit_outside_1_to_500_or_not_an_integer_is_422_naming_limit(api: Api) -> None:
    """Every list route refuses it the same way: the validation_error envelope naming
    `limit`, never a 500 and never a page."""
    routes = seeded(api)
    wrong = {
        (path, value): response.status_code
        for path in routes
        for value in NOT_A_LIMIT
        if (
            response := api.client.get(path, params={"limit": value}, headers=api.admin)
        ).status_code
        != 422
        or invalid_fields(response) != ["limit"]
    }
    assert wrong == {}


def test_limits_of_1_and_500_and_a_repeated_limit_are_served(api: Api) -> None:
    """The bounds are pages of that many at most; a repeated ?limit= is served by one of its
    values (or refused by name), never a 500."""
    routes = seeded(api)
    for path in routes:
        for limit in (1, 500):
            got = api.client.get(path, params={"limit": limit}, headers=api.admin)
            assert got.status_code == 200, (path, got.text)
            assert 0 < len(got.json()["items"]) <= limit, path
        twice = api.client.get(f"{path}?limit=2&limit=1", headers=api.admin)
        if twice.status_code == 422:
            assert invalid_fields(twice) == ["limit"], path
        else:
            assert twice.status_code == 200 and len(twice.json()["items"]) in (1, 2), path


# --- cursors ------------------------------------------------------------------------------


def tampered(cursor: str) -> dict[str, tuple[str, bool]]:
    """Cursors a client could send instead of the one it got, and whether a page may answer
    (a changed character can spell another position this service could have returned)."""
    middle = len(cursor) // 2
    swapped = "A" if cursor[middle] != "A" else "B"
    return {
        "one character changed": (cursor[:middle] + swapped + cursor[middle + 1 :], True),
        "last character cut": (cursor[:-1], False),
        "cut in half": (cursor[:middle], False),
        "base64 garbage": ("!!!!not-base64~~~~", False),
        "very long": (cursor * 60, False),
        "a NUL added": (cursor + "\x00", False),
        "a NUL inside": (cursor_of(["\x00"]), False),
        "a lone surrogate": (cursor_of(["\ud800", "x"]), False),
        "unicode": ("커서" * 5, False),
        "an object": (cursor_of({"at": 1}), False),  # type: ignore[arg-type]
        "null": (base64.urlsafe_b64encode(b"null").decode(), False),
        "three positions": (cursor_of(["a", "b", "c"]), False),
        "a float": (cursor_of([1.5]), False),
        "a boolean": (cursor_of([True]), False),
        "deep nesting": (base64.urlsafe_b64encode(b"[" * 400 + b"]" * 400).decode(), False),
    }


def test_a_tampered_cursor_is_422_naming_cursor_never_a_500(api: Api) -> None:
    """Whatever a client does to a cursor, the answer is a 422 naming `cursor`, or (for a
    changed character) a page of this tenant's own items — never a 500."""
    routes = seeded(api)
    own = {
        path: once_each(
            one_page(api, path, routes.headers), "id" if "events" not in path else "sequence_no"
        )
        for path in routes
        if path != "/v1/alerts"
    }
    failures: list[tuple[str, str, int]] = []
    for path, ids in own.items():
        cursor = api.client.get(path, params={"limit": 1}, headers=routes.headers).json()
        for name, (forged, may_answer) in tampered(cursor["next_cursor"]).items():
            got = api.client.get(path, params={"cursor": forged}, headers=routes.headers)
            if got.status_code == 422 and invalid_fields(got) == ["cursor"]:
                continue
            key = "id" if "events" not in path else "sequence_no"
            shown = {i[key] for i in got.json().get("items", [])}
            if may_answer and got.status_code == 200 and shown <= set(ids):
                continue
            failures.append((path, name, got.status_code))
    assert failures == []


def test_a_cursor_of_another_route_filter_or_tenant_never_shows_another_tenants_data(
    api: Api,
) -> None:
    """A cursor is only a position: used on another route, with other filters or by another
    tenant's key, it answers a 422 naming `cursor` or a page of the caller's own items."""
    acme = seeded(api)
    globex_admin = {"X-API-Key": api.run(_key_of, api, "globex")}
    globex_session = api.client.post(
        "/v1/sessions",
        json={"kind": "quiz", "resource_id": "g", "subject_id": "jun", "started_at": at(-1000)},
        headers=api.other_tenant,
    ).json()["id"]
    for n in range(3):
        report_error(api, an_error(f"g{n}", at(-n)), api.other_tenant)
        record_sale(api, a_sale(f"g{n}", globex_session, at(-n)), api.other_tenant)
        grant(api, "jun", 7, globex_admin)
    globex = Routes({**acme.paths, "events": f"/v1/sessions/{globex_session}/events"}, globex_admin)
    send_events(api, globex_session, [1, 2, 3], api.other_tenant)

    def cursors(routes: Routes) -> dict[str, str]:
        return {
            path: api.client.get(path, params={"limit": 1}, headers=routes.headers).json()[
                "next_cursor"
            ]
            for path in routes
            if path != "/v1/alerts"
        }

    def listed(routes: Routes) -> set[Any]:
        return {
            item.get("id", item.get("sequence_no"))
            for path in routes
            if path != "/v1/alerts"
            for item in one_page(api, path, routes.headers)
        }

    acme_cursors, globex_cursors = cursors(acme), cursors(globex)
    acme_items, globex_items = listed(acme), listed(globex)
    leaks: list[tuple[str, str, int]] = []
    for mine, theirs, foreign, own in (
        (acme, globex_cursors, globex_items - acme_items, acme_items),
        (globex, acme_cursors, acme_items - globex_items, globex_items),
    ):
        for path in mine:
            if path == "/v1/alerts":
                continue
            for origin, cursor in theirs.items():
                for params in ({}, {"kind": "quiz"}, {"device_id": "kiosk-1"}):
                    got = api.client.get(
                        path, params={"cursor": cursor, **params}, headers=mine.headers
                    )
                    if got.status_code == 422 and invalid_fields(got) == ["cursor"]:
                        continue
                    shown = {i.get("id", i.get("sequence_no")) for i in got.json().get("items", [])}
                    if got.status_code != 200 or shown & foreign or not shown <= own:
                        leaks.append((path, origin, got.status_code))
    assert leaks == []


async def _key_of(api: Api, tenant: str) -> str:
    create_api_key: Any = api.container.use_cases.create_api_key()
    created = await create_api_key(CreateApiKeyCommand(tenant, "admin"))
    return str(created.secret)


def test_a_sessions_cursor_from_other_filters_pages_only_what_the_filters_match(api: Api) -> None:
    """The same route, other filters: the cursor's position is kept, the filters are the
    request's."""
    for n in range(6):
        start(api, at(-n), kind="quiz" if n % 2 else "webinar")
    cursor = api.client.get("/v1/sessions", params={"limit": 2}, headers=api.app).json()[
        "next_cursor"
    ]  # after sessions 0 and 1
    quiz = walk(api, "/v1/sessions", api.app, 1, kind="quiz", cursor=cursor)
    assert [s["started_at"] for s in quiz] == [
        at(-3).replace("+00:00", "Z"),
        at(-5).replace("+00:00", "Z"),
    ]


def test_a_ledger_cursor_is_where_the_last_entry_stands_and_names_no_other_subject(
    api: Api,
) -> None:
    """Found by the review: the ledger's cursor was an entry's id, and one naming no entry of
    the subject ended the walk (memory, SQL) or began it again (MongoDB). It is now where the
    last entry stands (its instant and id), as the other listings' cursors are: a cursor of
    another shape is refused, another subject's is a place in this subject's ledger, and one
    past the last entry gives an empty last page."""
    for subject in ("jun", "mina"):
        for n in range(3):
            grant(api, subject, n + 1)
    path = "/v1/accounts/jun/credits/ledger"
    juns = walk(api, path, api.app, 1)
    minas = api.client.get(
        "/v1/accounts/mina/credits/ledger", params={"limit": 1}, headers=api.app
    ).json()
    after_mina = instant(minas["items"][0]["created_at"])

    for forged in (cursor_of([juns[0]["id"]]), cursor_of([3])):
        got = api.client.get(path, params={"cursor": forged}, headers=api.app)
        assert invalid_fields(got) == ["cursor"], got.text
    got = api.client.get(path, params={"cursor": minas["next_cursor"]}, headers=api.app)
    assert got.status_code == 200, got.text
    listed = got.json()["items"]
    assert {e["id"] for e in listed} <= {e["id"] for e in juns}, listed
    assert all(instant(e["created_at"]) >= after_mina for e in listed), (after_mina, listed)
    past = cursor_of(["2999-01-01T00:00:00+00:00", ""])
    got = api.client.get(path, params={"cursor": past}, headers=api.app)
    assert got.json() == {"items": [], "next_cursor": None}, got.text


def test_a_walk_past_an_error_or_sale_with_a_long_id_outside_ascii_goes_on(api: Api) -> None:
    """The service must accept every cursor it returns. Found by the review: a cursor holding
    an id of 200 characters outside ASCII (JSON escapes each, in 6 or 12 characters) was longer
    than the longest the service took (1,000), so the rest of the list was out of reach."""
    session = api.start()["id"]
    for n, id in enumerate(["ñ" * 200, "한" * 200, "😀" * 200, "plain"]):
        report_error(api, an_error(id, at(-n)))
        record_sale(api, a_sale(id, session, at(-n)))

    for path in ("/v1/errors", "/v1/sales"):
        assert len(walk(api, path, api.app, 1)) == 4, path


# --- list routes without cursors ------------------------------------------------------------


def _two_alerts(api: Api) -> None:
    rate = api.client.put("/v1/rates/webinar", json={"credits_per_minute": 1}, headers=api.admin)
    assert rate.status_code == 200, rate.text
    for subject in ("broke-1", "broke-2"):
        session = api.start(subject_id=subject, started_at=at(-300_000))
        exited = api.client.post(f"/v1/sessions/{session['id']}/exit", json={}, headers=api.app)
        assert exited.json()["charge"]["warning"] == "negative_balance", exited.text


def _two_plans(api: Api) -> None:
    for plan in ("free", "pro"):
        put = api.client.put(f"/v1/plans/{plan}", json={"unlimited": True}, headers=api.admin)
        assert put.status_code in (200, 201), put.text


def _two_funnels(api: Api) -> None:
    stages = [{"name": f"s{n}", "match": {"type": f"t{n}"}} for n in range(2)]
    for name in ("photo", "quiz"):
        put = api.client.put(
            f"/v1/funnels/{name}", json={"kind": "kiosk", "stages": stages}, headers=api.admin
        )
        assert put.status_code in (200, 201), put.text


def _two_subscriptions(api: Api) -> None:
    _two_plans(api)
    for plan, days in (("free", 10), ("pro", 20)):
        ends = (datetime.now(UTC) + timedelta(days=days)).isoformat()
        put = api.client.put(
            "/v1/accounts/jun/subscription",
            json={"plan_id": plan, "ends_at": ends},
            headers=api.admin,
        )
        assert put.status_code in (200, 201), put.text


def _two_snapshots(api: Api) -> None:
    for n in range(2):
        body = {
            "source": "lk-1",
            "at": at(-60_000 * n),
            "cpu_percent": 1,
            "memory_percent": 1,
            "memory_mb": 1,
            "traffic_bytes_total": n,
            "concurrent_users": 1,
            "active_rooms": 1,
        }
        posted = api.client.post("/v1/snapshots", json=body, headers=api.admin)
        assert posted.status_code in (200, 201) and posted.json()["inserted"] == 1, posted.text


def _keys_exist(api: Api) -> None:
    """acme has three keys already (app, ingest, admin)."""


@pytest.mark.parametrize(
    ("path", "seed"),
    [
        pytest.param(
            "/v1/alerts",
            _two_alerts,
            id="alerts",
        ),
        pytest.param(
            "/v1/keys",
            _keys_exist,
            id="keys",
        ),
        pytest.param(
            "/v1/plans",
            _two_plans,
            id="plans",
        ),
        pytest.param(
            "/v1/funnels",
            _two_funnels,
            id="funnels",
        ),
        pytest.param(
            "/v1/accounts/jun/subscriptions",
            _two_subscriptions,
            id="subscriptions",
        ),
        pytest.param(
            "/v1/snapshots",
            _two_snapshots,
            id="snapshots",
        ),
    ],
)
def test_every_list_route_pages_with_next_cursor(
    api: Api, path: str, seed: Callable[[Api], None]
) -> None:
    """API.md: "Lists are cursor-paginated … the body is {items, next_cursor}"; a list longer
    than a page can be read to its end. Found by the review: alerts, keys, plans, funnels,
    subscriptions and snapshots answered {items} alone (snapshots cut at 1,000)."""
    seed(api)
    first = api.client.get(path, params={"limit": 1}, headers=api.admin)
    assert first.status_code == 200, first.text
    assert len(first.json()["items"]) == 1
    assert isinstance(first.json().get("next_cursor"), str), first.text
    walked = walk(api, path, api.admin, 1)
    assert len(walked) >= 2 and len(walked) == len(one_page(api, path, api.admin))


def test_a_snapshots_limit_above_500_is_422_naming_limit(api: Api) -> None:
    """Found by the review: snapshots took up to 1,000 a page, 100 unless told."""
    _two_snapshots(api)
    assert invalid_fields(api.client.get("/v1/snapshots?limit=501", headers=api.admin)) == ["limit"]
