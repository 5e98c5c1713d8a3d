"""The hot routes' handlers called directly, their arguments taken where Litestar takes them.

For each request Litestar builds a handler's arguments through its kwargs model: an extractor per
kind of parameter, each dependency resolved through its `Provide` (with a signature model of its
own, validating the request it is given), then every argument validated again against the
handler's signature model; and it makes the answer a `Response`, then an `ASGIResponse`. For a
session's start and exit, whose dependencies are plain functions of the request, that was a
fifth of the worker's CPU a pair (on PostgreSQL 444 µs against 356, benchmarks/HISTORY.md).

`CalledDirectly` is the innermost middleware of such a handler (Litestar's public `middleware=`,
listed last). Litestar still routes the request, checks that its Host header is valid, answers
CORS and turns every error into its answer, as for any route. The middleware does what the route
would (`HTTPRoute.handle`): a request of the app's request class, the guards, the handler. Only
the arguments are taken directly:
- `request`: that request;
- `data`: the body as the request class decodes it (`StrictJSONRequest.json`). An empty body goes
  through the handler's signature model, as in Litestar: the parameter's default, or its error;
- a path parameter: as the router parsed it;
- a dependency whose provider is a plain function of the request (`Provide(f,
  sync_to_thread=False)`, as every dependency of this app): called with the request. Its value
  is passed as the provider returns it, which the type checker holds to the parameter's type
  (the signature model would convert a value of another type: a "5" for an int).
A handler with anything else (another parameter, a hook, a DTO, a response cache, a synchronous
function, a middleware inside this one, or an app whose allowed hosts, compression or CSRF
Litestar would put inside it) is refused when the app is built (`check`), so it is never
answered otherwise than Litestar would answer it. An answer that is JSON and nothing else is
written at once; any other (headers or cookies of its own, a background task) goes through the
handler's `to_response`.

It never calls the route's own ASGI app.
"""

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from litestar import Litestar, MediaType, Request, Response
from litestar.di import Provide
from litestar.enums import RequestEncodingType
from litestar.exceptions import ImproperlyConfiguredException
from litestar.handlers import HTTPRouteHandler
from litestar.params import BodyKwarg
from litestar.response.base import ASGIResponse
from litestar.routes import HTTPRoute
from litestar.serialization import encode_json, get_serializer
from litestar.status_codes import HTTP_204_NO_CONTENT, HTTP_304_NOT_MODIFIED
from litestar.types import ASGIApp, Empty, Receive, Scope, Send, Serializer
from litestar.typing import FieldDefinition

from entrypoints.http.request import BODY_PARAMETER, StrictJSONRequest

Argument = Callable[[Request[Any, Any, Any]], Any]
REQUEST_PARAMETER = "request"
_NO_BODY = (HTTP_204_NO_CONTENT, HTTP_304_NOT_MODIFIED)
_BY_NAME = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
# What a parameter's kwarg definition may constrain (litestar.params.KwargDefinition).
_CONSTRAINTS = (
    *("const", "gt", "ge", "lt", "le", "multiple_of", "min_items", "max_items"),
    *("min_length", "max_length", "pattern", "lower_case", "upper_case"),
)
# A handler's media type, or a Response's: "" (a handler that returns Responses) is JSON too.
_JSON_MEDIA_TYPES = ("", MediaType.JSON)
_JSON = [(b"content-type", MediaType.JSON.value.encode())]


@dataclass(frozen=True)
class _Call:
    """How to call one handler: its arguments but the body, whether it takes the body, and how
    its answers are encoded."""

    arguments: dict[str, Argument]
    takes_body: bool
    encoder: Serializer
    plain_json: bool  # its layers add nothing to its answers but JSON


class CalledDirectly:
    """A handler's middleware: Litestar makes one per route handler and method."""

    def __init__(self, app: ASGIApp) -> None:
        del app  # the route's own app: what this replaces
        self._call: _Call | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = cast(HTTPRouteHandler, scope["route_handler"])
        call = self._call or self._plan(handler, scope["path_params"])
        request = handler.resolve_request_class()(scope=scope, receive=receive, send=send)
        if handler.resolve_guards():
            await handler.authorize_connection(connection=request)
        # The body first, as Litestar: a malformed one is answered before any dependency runs.
        body = await request.json() if call.takes_body and await request.body() else Empty
        kwargs = {name: argument(request) for name, argument in call.arguments.items()}
        if body is not Empty:
            kwargs[BODY_PARAMETER] = body
        elif call.takes_body:  # the parameter's default, or Litestar's own error for no body
            kwargs = handler.signature_model.parse_values_from_connection_kwargs(request, kwargs)
        data = await handler.fn(**kwargs)
        if (answer := _json_answer(handler, call, data)) is not None:
            status, encoded = answer
            headers = [*_JSON, (b"content-length", str(len(encoded)).encode())]
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": encoded, "more_body": False})
            return
        response = await handler.to_response(app=scope["litestar_app"], data=data, request=request)
        await response(scope, receive, send)

    def _plan(self, handler: HTTPRouteHandler, path_parameters: dict[str, Any]) -> _Call:
        self._call = planned(handler, {n: type(v) for n, v in path_parameters.items()})
        return self._call


def planned(handler: HTTPRouteHandler, path_parameters: dict[str, type]) -> _Call:
    """How to call the handler, or ImproperlyConfiguredException if it cannot be called as
    Litestar would call it. `path_parameters`: the route's, with the type its router parses each
    to (a path parameter is passed as parsed, so the handler must take it as that type)."""
    app = handler.app
    refused = [
        what
        for what, present in (
            (
                "a middleware inside CalledDirectly",
                handler.resolve_middleware()[0] is not CalledDirectly,
            ),
            (
                "allowed hosts, compression or CSRF",
                app.allowed_hosts or app.compression_config or app.csrf_config,
            ),
            ("a before_request hook", handler.resolve_before_request()),
            ("an after_response hook", handler.resolve_after_response()),
            ("a DTO", handler.resolve_data_dto() or handler.resolve_return_dto()),
            ("a response cache", handler.cache),
            ("a synchronous function", handler.has_sync_callable),
        )
        if present
    ]
    dependencies = handler.resolve_dependencies()
    arguments: dict[str, Argument] = {}
    parameters = handler.parsed_fn_signature.parameters
    for name, parameter in parameters.items():
        if name == REQUEST_PARAMETER:
            arguments[name] = _the_request
        elif _constrained(parameter):
            refused.append(f"constraints on {name!r} (only the signature model checks them)")
        elif name == BODY_PARAMETER:
            if not _decoded_by_the_request(handler, parameter):
                refused.append("a body its request class does not decode to its type")
        elif path_parameters.get(name, object) is parameter.annotation:
            arguments[name] = _path_parameter(name)
        elif name in dependencies and _of_the_request(dependencies[name]):
            arguments[name] = _dependency(dependencies[name].dependency)
        else:
            refused.append(f"the parameter {name!r}")
    if refused:
        raise ImproperlyConfiguredException(
            f"{handler} cannot be called directly: it has {', '.join(refused)}"
        )
    return _Call(
        arguments,
        takes_body=BODY_PARAMETER in parameters,
        encoder=get_serializer(handler.resolve_type_encoders()),
        plain_json=_adds_nothing(handler),
    )


def check(app: Litestar) -> None:
    """Refuse, as the app is built, a handler CalledDirectly could not call as Litestar would."""
    for route in app.routes:
        if isinstance(route, HTTPRoute):
            for handler in route.route_handlers:
                if CalledDirectly in handler.resolve_middleware():
                    # The router parses a parameter with a parser; it leaves the others text.
                    parsed = {
                        p.name: p.type if p.parser else str for p in route.path_parameters.values()
                    }
                    planned(handler, parsed)


def _json_answer(handler: HTTPRouteHandler, call: _Call, data: Any) -> tuple[int, bytes] | None:
    """The status and body of an answer that is JSON and nothing else, as Litestar encodes it;
    None for any other."""
    if not call.plain_json:
        return None
    if isinstance(data, ASGIResponse) or (not isinstance(data, Response) and callable(data)):
        return None  # an ASGI app of its own
    status, content = handler.status_code, data
    if isinstance(data, Response):
        if type(data) is not Response or not _nothing_but_json(data):
            return None
        status, content = data.status_code or status, data.content
    if isinstance(content, (bytes, str)) or content is Empty or status in _NO_BODY or status < 200:
        return None
    return status, encode_json(content, call.encoder)


def _adds_nothing(handler: HTTPRouteHandler) -> bool:
    return not (
        handler.resolve_response_headers()
        or handler.resolve_response_cookies()
        or handler.background
        or any(layer.after_request for layer in handler.ownership_layers)
        or handler.resolve_response_class() is not Response
        or handler.media_type not in _JSON_MEDIA_TYPES
    )


def _nothing_but_json(response: Response[Any]) -> bool:
    return not (
        response.headers
        or response.cookies
        or response.background
        or response.response_type_encoders
        or response.media_type not in (None, *_JSON_MEDIA_TYPES)
        or response.encoding != "utf-8"
    )


def _constrained(parameter: FieldDefinition) -> bool:
    definition = parameter.kwarg_definition
    return definition is not None and any(
        getattr(definition, constraint, None) is not None for constraint in _CONSTRAINTS
    )


def _decoded_by_the_request(handler: HTTPRouteHandler, parameter: FieldDefinition) -> bool:
    """A JSON body that the request class decodes strictly to the parameter's type, as the
    signature model would then take it unchanged."""
    return (
        isinstance(parameter.kwarg_definition, BodyKwarg)
        and parameter.kwarg_definition.media_type == RequestEncodingType.JSON
        and issubclass(handler.resolve_request_class(), StrictJSONRequest)
    )


def _of_the_request(provide: Provide) -> bool:
    parameters = list(inspect.signature(provide.dependency).parameters.values())
    return (
        provide.has_sync_callable
        and not provide.use_cache
        and not provide.has_sync_generator_dependency
        and not provide.has_async_generator_dependency
        and [p.name for p in parameters] == [REQUEST_PARAMETER]
        and parameters[0].kind in _BY_NAME
    )


def _dependency(provider: Callable[..., Any]) -> Argument:
    def dependency(request: Request[Any, Any, Any]) -> Any:
        return provider(request=request)

    return dependency


def _the_request(request: Request[Any, Any, Any]) -> Request[Any, Any, Any]:
    return request


def _path_parameter(name: str) -> Argument:
    def parameter(request: Request[Any, Any, Any]) -> Any:
        return request.scope["path_params"][name]

    return parameter
