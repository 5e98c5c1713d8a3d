"""Handlers called directly (entrypoints/http/called_directly.py) answer as Litestar would.

Each handler of a small app is served twice, at /direct/... with CalledDirectly and at
/litestar/... without it, with the app's own request class, exception handlers and a guard; every
request of a matrix goes to both, and the answers must match (status, headers, body). Then: what
CalledDirectly cannot call as Litestar would is refused when the app is built, and the session's
start, heartbeat and exit, the event batches and LiveKit's webhooks of the real app are the
handlers it calls.
"""

from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
import pytest
from litestar import Litestar, Request, Response, Router, post
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency, Provide
from litestar.exceptions import ImproperlyConfiguredException
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath, FromQuery, JSONBody, Parameter
from litestar.response.base import ASGIResponse
from litestar.testing import TestClient
from litestar.types import ASGIApp, Receive, Scope, Send

from domain.errors import Conflict, Unauthorized
from entrypoints.http.called_directly import CalledDirectly, check
from entrypoints.http.errors import EXCEPTION_HANDLERS
from entrypoints.http.request import StrictJSONRequest
from tests.app_client import Api
from tests.livekit_server import LiveKitServer


class Body(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    count: int = 0


class Out(msgspec.Struct):
    name: str
    count: int
    item: str | None = None
    caller: str | None = None


def _caller(request: Request[Any, Any, Any]) -> str:
    caller = request.headers.get("x-caller", "nobody")
    if caller == "refused":  # a dependency that raises: after the body is decoded, as Litestar
        raise Unauthorized("refused")
    return caller


async def _refuse_without_key(connection: ASGIConnection[Any, Any, Any, Any], _: Any) -> None:
    if connection.headers.get("x-key") != "k":
        raise Unauthorized("no key")


async def created(data: JSONBody[Body], caller: NamedDependency[str]) -> Response[Out]:
    """As the start: a Response with its status chosen."""
    if data.name == "conflict":
        raise Conflict("taken")
    return Response(
        Out(data.name, data.count, caller=caller), status_code=201 if data.count else 200
    )


async def exited(
    item: FromPath[str], caller: NamedDependency[str], data: JSONBody[Body | None] = None
) -> Out:
    """As the exit: an optional body, a path parameter, a struct answered."""
    body = data or Body("none")
    return Out(body.name, body.count, item=item, caller=caller)


async def required(data: JSONBody[Body]) -> Out:
    return Out(data.name, data.count)


async def with_a_header(request: Request[Any, Any, Any]) -> Response[dict[str, str]]:
    """An answer that is more than JSON: it goes through the handler's to_response."""
    return Response({"method": request.method}, headers={"X-Extra": "1"}, status_code=202)


async def a_file(path: FromPath[str]) -> Out:
    """A `path` parameter, which the router leaves text."""
    return Out(path, 0)


async def asgi_answer() -> ASGIResponse:
    """An ASGI app of its own: through to_response too."""
    return ASGIResponse(body=b'{"asgi": true}', status_code=200)


HANDLERS: list[tuple[str, Callable[..., Any]]] = [
    ("/created", created),
    ("/items/{item:str}/exit", exited),
    ("/required", required),
    ("/header", with_a_header),
    ("/asgi", asgi_answer),
    ("/files/{path:path}", a_file),
]


def _router(path: str, directly: bool) -> Router:
    middleware = [CalledDirectly] if directly else []
    return Router(
        path=path,
        route_handlers=[post(p, middleware=middleware)(fn) for p, fn in HANDLERS],
        guards=[_refuse_without_key],
        dependencies={"caller": Provide(_caller, sync_to_thread=False)},
    )


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient[Litestar]]:
    app = Litestar(
        route_handlers=[_router("/direct", True), _router("/litestar", False)],
        exception_handlers=EXCEPTION_HANDLERS,
        request_class=StrictJSONRequest,
        request_max_body_size=5000,
    )
    check(app)
    with TestClient(app) as test_client:
        yield test_client


KEY = {"x-key": "k", "x-caller": "ana"}
REQUESTS: list[tuple[str, bytes, dict[str, str]]] = [
    ("/created", b'{"name": "a", "count": 2}', KEY),
    ("/created", b'{"name": "a"}', KEY),
    ("/created", b'{"name": "conflict"}', KEY),
    ("/created", b"", KEY),
    ("/created", b"null", KEY),
    ("/created", b'{"name": 5}', KEY),
    ("/created", b'{"name": "a", "extra": 1}', KEY),
    ("/created", b'{"name": "a"', KEY),
    ("/created", b'{"name": "\xff"}', KEY),
    ("/created", b"[" * 2000 + b"]" * 2000, KEY),
    ("/created", b'{"name": "' + b"x" * 6000 + b'"}', KEY),
    ("/created", b'{"name": "a"}', {}),
    ("/created", b'{"name": "a"', {"x-key": "k", "x-caller": "refused"}),
    ("/created", b'{"name": "a"}', {"x-key": "k", "x-caller": "refused"}),
    ("/created", b'{"name": "a"}', {"x-key": "k"}),
    ("/items/i-1/exit", b"", KEY),
    ("/items/i-1/exit", b"null", KEY),
    ("/items/i-1/exit", b'{"name": "b", "count": 1}', KEY),
    ("/items/i%201/exit", b"{}", KEY),
    ("/items/i-1/exit", b'{"count": "1"}', KEY),
    ("/items/i-1/exit?key=x", b"", KEY),
    ("/required", b"", KEY),
    ("/required", b"{}", KEY),
    ("/header", b"", KEY),
    ("/asgi", b"", KEY),
    ("/files/a/b%20c", b"", KEY),
]


@pytest.mark.parametrize(("path", "body", "headers"), REQUESTS)
def test_a_handler_called_directly_answers_as_litestar_does(
    client: TestClient[Litestar], path: str, body: bytes, headers: dict[str, str]
) -> None:
    direct = client.post(f"/direct{path}", content=body, headers=headers)
    litestar = client.post(f"/litestar{path}", content=body, headers=headers)
    assert direct.status_code == litestar.status_code, (direct.text, litestar.text)
    assert direct.content == litestar.content
    # The same headers, in the same order.
    assert direct.headers.multi_items() == litestar.headers.multi_items()


def test_an_answer_that_is_json_and_nothing_else_is_written_without_to_response(
    client: TestClient[Litestar], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both ways of answering are in the matrix above: the plain JSON answers written by
    CalledDirectly itself, the others by the handler's to_response."""
    through: list[str] = []
    original = HTTPRouteHandler.to_response

    async def counted(self: HTTPRouteHandler, **kwargs: Any) -> Any:
        through.append(kwargs["request"].url.path)
        return await original(self, **kwargs)

    monkeypatch.setattr(HTTPRouteHandler, "to_response", counted)
    created = client.post("/direct/created", content=b'{"name": "a", "count": 1}', headers=KEY)
    assert created.status_code == 201, created.text
    assert created.json() == {"name": "a", "count": 1, "item": None, "caller": "ana"}
    exited = client.post("/direct/items/i-1/exit", headers=KEY)
    assert exited.status_code == 201, exited.text
    extra = client.post("/direct/header", headers=KEY)
    assert (extra.status_code, extra.headers["x-extra"]) == (202, "1")
    assert through == ["/direct/header"]


def _app_with(handler: HTTPRouteHandler, **layers: Any) -> Litestar:
    return Litestar(route_handlers=[handler], **{"request_class": StrictJSONRequest, **layers})


def _two(request: Request[Any, Any, Any], other: FromQuery[int]) -> str:
    return "two"


def _positional(request: Request[Any, Any, Any], /) -> str:
    return "positional"


class _Inside:
    """A middleware that would run inside CalledDirectly, were it called."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def _post(path: str, **options: Any) -> Callable[[Callable[..., Any]], HTTPRouteHandler]:
    return post(path, middleware=[CalledDirectly], **options)


async def _yielded(request: Request[Any, Any, Any]) -> AsyncIterator[str]:
    yield "thing"


async def _by_query(q: FromQuery[str]) -> None: ...
async def _typed_path(item: FromPath[int]) -> None: ...
async def _by_name(thing: NamedDependency[str]) -> None: ...
async def _short(item: Annotated[str, Parameter(min_length=3)]) -> None: ...
def _sync(data: JSONBody[Body]) -> None: ...


def _provided(provider: Callable[..., Any]) -> dict[str, Provide]:
    return {"thing": Provide(provider, sync_to_thread=False)}


REFUSED: list[tuple[str, HTTPRouteHandler, dict[str, Any]]] = [
    ("the parameter 'q'", _post("/q")(_by_query), {}),
    ("the parameter 'item'", _post("/{item:str}")(_typed_path), {}),
    ("the parameter 'thing'", _post("/d", dependencies=_provided(_two))(_by_name), {}),
    ("the parameter 'thing'", _post("/p", dependencies=_provided(_positional))(_by_name), {}),
    ("the parameter 'thing'", _post("/g", dependencies={"thing": Provide(_yielded)})(_by_name), {}),
    ("constraints on 'item'", _post("/{item:str}")(_short), {}),
    ("a synchronous function", _post("/s", sync_to_thread=False)(_sync), {}),
    ("a middleware inside", post("/i", middleware=[CalledDirectly, _Inside])(required), {}),
    ("allowed hosts", _post("/h")(required), {"allowed_hosts": ["shop.example"]}),
    ("a before_request hook", _post("/b", before_request=lambda _: None)(created), {}),
    ("an after_response hook", _post("/a", after_response=lambda _: None)(created), {}),
    ("a response cache", _post("/c", cache=True)(required), {}),
    ("a body its request class does not decode", _post("/r")(required), {"request_class": Request}),
]


@pytest.mark.parametrize(("why", "handler", "layers"), REFUSED, ids=[why for why, _, _ in REFUSED])
def test_a_handler_it_cannot_call_as_litestar_would_is_refused_when_the_app_is_built(
    why: str, handler: HTTPRouteHandler, layers: dict[str, Any]
) -> None:
    app = _app_with(
        handler, dependencies={"caller": Provide(_caller, sync_to_thread=False)}, **layers
    )
    with pytest.raises(ImproperlyConfiguredException, match=why):
        check(app)


on_memory = pytest.mark.parametrize("storage_url", ["memory"], indirect=True)


@on_memory
def test_the_start_heartbeats_event_batches_the_exit_and_livekits_webhooks_are_called_directly(
    api: Api, kwargs_built: list[str], livekit: LiveKitServer
) -> None:
    """Litestar's kwargs model, which builds the arguments of every other route, builds none of
    theirs."""
    session = api.start()
    batch = {"events": [{"session_id": session["id"], "type": "view", "sequence_no": 1}]}
    assert api.client.post("/v1/events/batch", json=batch, headers=api.ingest).status_code == 200
    beat = api.client.post(f"/v1/sessions/{session['id']}/heartbeat", headers=api.ingest)
    assert beat.status_code == 200, beat.text
    exit_ = api.client.post(f"/v1/sessions/{session['id']}/exit", headers=api.app)
    assert exit_.status_code == 200, exit_.text
    raw, headers = livekit.joined("ana", datetime.now(UTC))
    webhook = api.client.post("/v1/webhooks/livekit", content=raw, headers=headers)
    assert webhook.status_code == 200, webhook.text
    assert kwargs_built == []
    read = api.client.get(f"/v1/sessions/{session['id']}", headers=api.app)
    assert read.status_code == 200
    assert kwargs_built == [f"/v1/sessions/{session['id']}"]
