"""A hostile review of three changes that cut per-request work: use cases built once per app
(BuiltUseCases), the API key read from the raw headers and the metric series looked up once, and
the hot paths' checkout without SQLAlchemy's greenlet (pooled_connection, with the PostgreSQL
engines' lazy connect).

It found two defects, fixed since: a key sent under a header name not lowercased was ignored
(ASGI servers lowercase names, but need not), and PostgreSQL URLs whose query SQLAlchemy
translates into asyncpg's arguments (`?ssl=`, `?prepared_statement_cache_size=`,
`?command_timeout=`, several hosts) no longer connected. The other tests pin risks that turned
out fine. (Not seen by the shared use cases, by design: a singleton reset or a configuration
changed after the app was bound; BuiltUseCases says so.)
"""

import ast
import asyncio
import gc
import inspect
import logging
import textwrap
import time
import warnings
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from dependency_injector import providers
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.connection import ASGIConnection
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import QueuePool
from sqlalchemy.util import greenlet_spawn

from adapters.sqlalchemy.engine import async_url, create_engine, pooled_connection
from entrypoints.container import build_container
from entrypoints.http.app import bind, use_case_providers
from entrypoints.http.auth import BEARER, KEY_IN_QUERY, presented_key
from entrypoints.http.built_use_cases import BuiltUseCases
from entrypoints.settings import Settings
from tests.app_client import Api
from tests.conftest import psql
from tests.fakes import FakeClock
from tests.http.raw_requests import raw_get
from tests.http.test_dependencies_in_order import on_memory

# ---------------------------------------------------------------------------------------------
# 1. BuiltUseCases
# ---------------------------------------------------------------------------------------------


def _memory_container() -> Any:
    return build_container(Settings(storage_url="memory://"))


def test_an_override_whose_own_dependency_is_overridden_later_is_seen() -> None:
    container = _memory_container()
    built = BuiltUseCases(use_case_providers(container))
    when = providers.Object(datetime(2031, 1, 1, tzinfo=UTC))
    container.outside.clock.override(providers.Factory(FakeClock, when))
    assert built.get("start_session")._clock.now().year == 2031

    when.override(providers.Object(datetime(2040, 1, 1, tzinfo=UTC)))

    assert built.get("start_session")._clock.now().year == 2040


def test_a_nested_container_override_is_seen() -> None:
    from entrypoints.container.outside import OutsideContainer

    container = _memory_container()
    built = BuiltUseCases(use_case_providers(container))
    built.get("record_exit")
    fake = FakeClock(datetime(2031, 1, 1, tzinfo=UTC))

    container.outside.override(OutsideContainer(clock=providers.Object(fake)))

    assert built.get("record_exit")._clock is fake


def test_the_cache_is_bounded_by_the_use_case_names() -> None:
    container = _memory_container()
    built = BuiltUseCases(use_case_providers(container))
    names = list(use_case_providers(container))
    for _ in range(3):
        for name in names:
            built.get(name)
    with pytest.raises(KeyError):
        built.get("no_such_use_case")
    assert set(built._built) == set(names)


@on_memory
def test_bind_to_another_container_is_seen_by_the_next_request(api: Api) -> None:
    app = api.client.app
    settings = app.state.settings
    assert api.client.get("/v1/sessions", headers=api.app).status_code == 200
    other = _memory_container()
    bind(app, other, settings)
    try:
        # The other container's storage has no such key.
        assert api.client.get("/v1/sessions", headers=api.app).status_code == 401
    finally:
        bind(app, api.container, settings)
    assert api.client.get("/v1/sessions", headers=api.app).status_code == 200


# Process-wide caches, built as Singletons on purpose: shared before the change too.
_SHARED_BY_DESIGN = {"Remembered", "Authenticate"}
_MUTATORS = {"append", "add", "clear", "pop", "update", "extend", "setdefault", "discard"}


def _self_mutations(cls: type) -> list[str]:
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        return []
    found = []
    for method in ast.walk(tree):
        if not isinstance(method, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if method.name == "__init__":
            continue
        for node in ast.walk(method):
            targets: list[ast.expr] = []
            if isinstance(node, ast.Assign):
                targets = list(node.targets)
            elif isinstance(node, ast.AugAssign | ast.AnnAssign):
                targets = [node.target]
            for target in targets:
                base = target
                while isinstance(base, ast.Attribute | ast.Subscript):
                    if isinstance(base.value, ast.Name) and base.value.id == "self":
                        found.append(f"{cls.__name__}.{method.name}: {ast.unparse(target)}")
                        break
                    base = base.value
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in _MUTATORS
                and isinstance(node.func.value, ast.Attribute)
                and isinstance(node.func.value.value, ast.Name)
                and node.func.value.value.id == "self"
                and node.func.value.attr not in {"_sessions", "_events", "_keys", "_tenants"}
                and not node.func.value.attr.startswith("_accounts")
                and node.func.value.attr not in {"_log", "_snapshots"}
            ):
                found.append(f"{cls.__name__}.{method.name}: {ast.unparse(node)[:60]}")
    return found


def test_no_shared_use_case_keeps_per_request_state_on_self() -> None:
    """Every object reachable from a built use case (nested helpers included) that comes from
    application/: none writes to its own attributes outside __init__ (ports' add/append are
    calls on repositories, excluded), except the process-wide caches."""
    container = _memory_container()
    built = BuiltUseCases(use_case_providers(container))
    seen: set[int] = set()
    classes: set[type] = set()

    def walk(obj: Any) -> None:
        if id(obj) in seen:
            return
        seen.add(id(obj))
        if type(obj).__module__.startswith("application."):
            classes.add(type(obj))
            for value in getattr(obj, "__dict__", {}).values():
                walk(value)

    for name in use_case_providers(container):
        walk(built.get(name))
    found = [m for c in classes if c.__name__ not in _SHARED_BY_DESIGN for m in _self_mutations(c)]
    assert len(classes) > 40
    assert found == []


# ---------------------------------------------------------------------------------------------
# 2. The API key from the raw headers; the metrics' series cache
# ---------------------------------------------------------------------------------------------


class _Handler:
    def __init__(self, opt: dict[str, Any]) -> None:
        self.opt = opt


def _connection(
    headers: list[tuple[bytes, bytes]], query: bytes = b"", in_query: bool = False
) -> ASGIConnection[Any, Any, Any, Any]:
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "query_string": query,
        "headers": headers,
        "route_handler": _Handler({KEY_IN_QUERY: True} if in_query else {}),
        "state": {},
    }
    return ASGIConnection(scope)  # type: ignore[arg-type]


def _previous_presented_key(connection: Any) -> str | None:
    """`git show 4713d67:entrypoints/http/auth.py`"""
    key = connection.headers.get("x-api-key")
    if key:
        return key  # type: ignore[no-any-return]
    authorization = connection.headers.get("authorization", "")
    if authorization.lower().startswith(BEARER):
        return authorization[len(BEARER) :].strip()  # type: ignore[no-any-return]
    if connection.route_handler.opt.get(KEY_IN_QUERY):
        return connection.query_params.get("key")  # type: ignore[no-any-return]
    return None


_values = st.one_of(
    st.binary(max_size=12),
    st.sampled_from(
        [
            b"",
            b" ",
            b"Bearer k",
            b"bearer  k ",
            b"BEARER\tk",
            b"Bearer",
            b"Bearer ",
            b"k\xff\xfe",
            b"Bearer \xc3\xa9",
            b"Basic abc",
            b"bEaReR x y",
        ]
    ),
)
_names = st.sampled_from([b"x-api-key", b"authorization", b"x-other", b"host"])


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    headers=st.lists(st.tuples(_names, _values), max_size=5),
    in_query=st.booleans(),
    query=st.sampled_from([b"", b"key=q", b"key=", b"key=a&key=b"]),
)
def test_the_raw_header_key_matches_the_previous_one_on_lowercase_names(
    headers: list[tuple[bytes, bytes]], in_query: bool, query: bytes
) -> None:
    """ASGI-normal (lowercase) names: duplicates, empty X-API-Key with a bearer, any bytes,
    Bearer casing and whitespace all give the same key as before, and never raise."""
    expected = _previous_presented_key(_connection(headers, query, in_query))
    assert presented_key(_connection(headers, query, in_query)) == expected


@pytest.mark.parametrize(
    "headers",
    [
        [(b"X-API-Key", b"secret")],
        [(b"X-Api-Key", b"secret")],
        [(b"Authorization", b"Bearer secret")],
    ],
    ids=["X-API-Key", "X-Api-Key", "Authorization"],
)
def test_a_header_name_not_lowercased_by_the_server_is_ignored(
    headers: list[tuple[bytes, bytes]],
) -> None:
    """ASGI: "Header names should be lowercased, but it is not required; servers should preserve
    header case on a best-effort basis." Litestar's Headers (the previous code) match names
    case-insensitively; the raw scan compares bytes."""
    assert _previous_presented_key(_connection(headers)) == "secret"
    assert presented_key(_connection(headers)) == "secret"


@on_memory
def test_the_app_refuses_a_key_sent_under_a_mixed_case_header_name(api: Api) -> None:
    key = api.app["X-API-Key"].encode()
    app = api.client.app
    assert api.run(raw_get, app, "/v1/sessions", [(b"x-api-key", key)])[0] == 200
    assert api.run(raw_get, app, "/v1/sessions", [(b"X-API-Key", key)])[0] == 200


@on_memory
def test_odd_key_bytes_never_answer_500(api: Api) -> None:
    app = api.client.app
    for value in (b"\xff\xfe\x00", b"\xc3\x28", b"", b" ", "é".encode("latin-1")):
        assert api.run(raw_get, app, "/v1/sessions", [(b"x-api-key", value)])[0] == 401
        auth = b"Bearer " + value
        assert api.run(raw_get, app, "/v1/sessions", [(b"authorization", auth)])[0] == 401
    key = api.app["X-API-Key"].encode()
    both = [(b"x-api-key", b""), (b"authorization", b"bEaReR   " + key + b"  ")]
    assert api.run(raw_get, app, "/v1/sessions", both)[0] == 200


@on_memory
def test_the_metrics_series_cache_does_not_grow_with_client_input(api: Api) -> None:
    metrics = api.client.app.state.metrics
    for n in range(60):
        api.client.get(f"/nowhere/{n}")
        api.client.get(f"/v1/sessions/{n}", headers=api.app)
        api.client.request(f"X{n}", "/v1/sessions", headers=api.app)
        api.client.get(f"/schema/x{n}")
    assert len(metrics._request_series) < 20, sorted(metrics._request_series)
    exposition = metrics.exposition().decode()
    assert "nowhere" not in exposition and "X1" not in exposition


# ---------------------------------------------------------------------------------------------
# 3. pooled_connection and the async_creator
# ---------------------------------------------------------------------------------------------


def _previous_engine(url: str, pool_size: int, generic_plans: bool = False) -> AsyncEngine:
    """create_engine as it was before b50779b (PostgreSQL branch)."""
    server_settings = {"jit": "off"}
    if generic_plans:
        server_settings["plan_cache_mode"] = "force_generic_plan"
    return create_async_engine(
        make_url(async_url(url)),
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=30,
        connect_args={"server_settings": server_settings},
        hide_parameters=True,
        json_deserializer=msgspec.json.decode,
    )


async def _connects(engine: AsyncEngine, previous: bool = False) -> str | None:
    """None when a hot path's checkout gets a working connection, else why not. `previous`:
    checked out as before b50779b (always inside SQLAlchemy's greenlet)."""
    try:
        if previous:
            connection = await engine.raw_connection()
            try:
                driver: Any = connection.driver_connection
                assert await driver.fetchval("SELECT 1") == 1
            finally:
                await greenlet_spawn(connection.close)
            return None
        async with pooled_connection(engine) as pooled:
            driver = pooled.driver_connection
            assert await driver.fetchval("SELECT 1") == 1
        return None
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    finally:
        await engine.dispose()


def _port(postgres_url: str) -> int:
    port = make_url(postgres_url).port
    assert port is not None
    return port


# URLs the previous engine connected with. Each must still connect.
URLS_SQLALCHEMY_TRANSLATES = {
    # SQLAlchemy's documented asyncpg forms: given to asyncpg.connect as arguments before,
    # now put in the DSN, where asyncpg takes them as server settings PostgreSQL refuses.
    "ssl=disable": "{base}?ssl=disable",
    "prepared_statement_cache_size": "{base}?prepared_statement_cache_size=0",
    "command_timeout": "{base}?command_timeout=30",
    # Multiple hosts: asyncpg's DSN parser keeps the last `host` only.
    "multihost, first up": "postgresql://postgres@/postgres?host=127.0.0.1:{port}&host=127.0.0.1:1",
}
URLS_AS_WRITTEN = {
    "plain": "{base}",
    "postgres scheme": "postgres://postgres@127.0.0.1:{port}/postgres",
    "multihost, last up": "postgresql://postgres@/postgres?host=127.0.0.1:1&host=127.0.0.1:{port}",
}


def _url(template: str, postgres_url: str) -> str:
    return template.format(base=postgres_url, port=_port(postgres_url))


@pytest.mark.anyio
@pytest.mark.parametrize("case", list(URLS_SQLALCHEMY_TRANSLATES))
async def test_a_url_the_previous_engine_connected_with_no_longer_connects(
    postgres_url: str, case: str
) -> None:
    url = _url(URLS_SQLALCHEMY_TRANSLATES[case], postgres_url)
    assert await _connects(_previous_engine(url, 1), previous=True) is None  # it did before
    assert await _connects(create_engine(url, 1)) is None


@pytest.mark.anyio
@pytest.mark.parametrize("case", list(URLS_AS_WRITTEN))
async def test_urls_that_connect_as_before(postgres_url: str, case: str) -> None:
    url = _url(URLS_AS_WRITTEN[case], postgres_url)
    assert await _connects(_previous_engine(url, 1), previous=True) is None
    assert await _connects(create_engine(url, 1)) is None


@pytest.mark.anyio
async def test_a_unix_socket_host_connects(postgres_url: str) -> None:
    directory = psql(postgres_url, "SHOW unix_socket_directories").split(",")[0].strip()
    port = _port(postgres_url)
    url = f"postgresql://postgres@/postgres?host={directory}&port={port}"
    assert await _connects(create_engine(url, 1)) is None, url


@pytest.fixture
async def engines(postgres_url: str) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    engine = create_engine(postgres_url, 2)
    driver = create_engine(postgres_url, 2, generic_plans=True)
    try:
        yield engine, driver
    finally:
        await engine.dispose()
        await driver.dispose()


@pytest.mark.anyio
async def test_server_settings_and_json_codecs_on_both_engines(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    engine, driver_engine = engines
    for e, plans in ((engine, "auto"), (driver_engine, "force_generic_plan")):
        async with pooled_connection(e) as connection:  # a new connection: the fallback
            driver: Any = connection.driver_connection
            assert await driver.fetchval("SHOW jit") == "off"
            assert await driver.fetchval("SHOW plan_cache_mode") == plans
            assert await driver.fetchval("""SELECT '{"a": [1]}'::json""") == {"a": [1]}
            assert await driver.fetchval("""SELECT '{"a": [1]}'::jsonb""") == {"a": [1]}
        async with e.connect() as conn:
            assert (await conn.execute(text("SHOW jit"))).scalar() == "off"
            got = (await conn.execute(text("""SELECT '{"b": 2}'::json"""))).scalar()
            assert got == {"b": 2}


@pytest.mark.anyio
async def test_a_pool_exhausted_still_times_out_and_leaks_nothing(postgres_url: str) -> None:
    engine = create_engine(postgres_url, 1)
    pool = engine.sync_engine.pool
    assert isinstance(pool, QueuePool)
    pool._timeout = 0.3  # 30 s in production
    try:
        async with pooled_connection(engine):
            started = time.monotonic()
            with pytest.raises(sa_exc.TimeoutError):
                async with pooled_connection(engine):
                    pass
            assert time.monotonic() - started >= 0.25
            assert pool.checkedout() == 1
        assert pool.checkedout() == 0 and pool.overflow() == 0
        assert await _connects_keep(engine) is None
    finally:
        await engine.dispose()


async def _connects_keep(engine: AsyncEngine) -> str | None:
    async with pooled_connection(engine) as connection:
        driver: Any = connection.driver_connection
        assert await driver.fetchval("SELECT 1") == 1
    return None


@pytest.mark.anyio
async def test_failed_greenlet_free_checkouts_leave_the_pool_counters_right(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    engine = create_engine(postgres_url, 2)
    pool = engine.sync_engine.pool
    assert isinstance(pool, QueuePool)

    async def one(n: int) -> int:
        async with pooled_connection(engine) as connection:
            await asyncio.sleep(0.05)
            driver: Any = connection.driver_connection
            return int(await driver.fetchval("SELECT $1::int", n))

    try:
        with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.ERROR):
            warnings.simplefilter("always")
            assert await asyncio.gather(*(one(n) for n in range(8))) == list(range(8))
            assert pool.checkedout() == 0 and pool.overflow() == 0 and pool.checkedin() == 2
            # Every connection invalidated at once (as on a disconnect): the next checkouts
            # recycle them outside the greenlet first.
            async with pooled_connection(engine) as connection:
                await greenlet_spawn(pool._invalidate, connection)
            assert await asyncio.gather(*(one(n) for n in range(4))) == list(range(4))
            assert pool.checkedout() == 0 and pool.overflow() == 0
            gc.collect()
        assert [str(w.message) for w in caught] == []
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    finally:
        await engine.dispose()


@pytest.mark.anyio
@pytest.mark.parametrize("in_memory", [False, True], ids=["file", "memory"])
async def test_sqlite_checkouts_through_both_paths(tmp_path: Any, in_memory: bool) -> None:
    url = "sqlite://" if in_memory else f"sqlite:///{tmp_path}/review.db"
    engine = create_engine(url, 0)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(3):  # new connection (fallback), then idle ones (no greenlet)
                async with pooled_connection(engine) as connection:
                    driver: Any = connection.driver_connection
                    cursor = await driver.execute("PRAGMA busy_timeout")
                    assert (await cursor.fetchone())[0] == 30000
                    cursor = await driver.execute(
                        "SELECT local_date('2024-01-01T23:30:00', 'Europe/Paris')"
                    )
                    assert (await cursor.fetchone())[0] == "2024-01-02"
            gc.collect()
        assert [str(w.message) for w in caught] == []
        pool = engine.sync_engine.pool
        assert not isinstance(pool, QueuePool) or pool.checkedout() == 0
    finally:
        await engine.dispose()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
