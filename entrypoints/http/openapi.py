"""What the OpenAPI schema says of a route besides its types: the rules it applies, and every
error it can answer, in the envelope it answers them in."""

import inspect
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import msgspec
from litestar import Response, Router
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import (
    Components,
    OpenAPIHeader,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Reference,
    Schema,
    SecurityRequirement,
    SecurityScheme,
)
from litestar.params import CookieParameter, HeaderParameter, PathParameter, QueryParameter
from litestar.plugins import OpenAPISchemaPlugin
from litestar.routes import HTTPRoute
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED
from litestar.typing import FieldDefinition

from domain.tenants import Role
from entrypoints.http.auth import AUTH, NEEDS_ADMIN, NEEDS_APP, ROLE, admitted
from entrypoints.http.errors import documented
from entrypoints.http.request import BODY_PARAMETER
from entrypoints.http.schemas.common import DOCUMENTED_AS

if TYPE_CHECKING:  # Litestar's own plugin protocol names it so
    from litestar._openapi.schema_generation import SchemaCreator

# The ways a request carries its API key (entrypoints/http/auth.presented_key): two on every
# route, and a third on the exit alone, for beacons.
COMPONENTS = Components(
    security_schemes={
        "apiKey": SecurityScheme(type="apiKey", name="X-API-Key", security_scheme_in="header"),
        "bearer": SecurityScheme(type="http", scheme="bearer", description="the API key"),
        "keyInQuery": SecurityScheme(
            type="apiKey",
            name="key",
            security_scheme_in="query",
            description="the API key, on the exit route only (navigator.sendBeacon cannot set "
            "headers); give a page an ingest key",
        ),
    }
)
KEYED: list[SecurityRequirement] = [{"apiKey": []}, {"bearer": []}]
KEY_IN_QUERY_TOO: list[SecurityRequirement] = [{"keyInQuery": []}]
REPLAYED = "the same request again (by id or idempotency key): what was stored the first time"
RATE_LIMITED = (
    "the key made more requests than its tenant's `rate_limit_per_second` allows: "
    "retry after `Retry-After` seconds"
)
UNAVAILABLE = (
    "the storage failed to answer, or others changed what this request changes so often "
    "meanwhile that it gave up: send the same request again after `Retry-After` seconds (what "
    "was stored already is answered as stored)"
)
RETRY_AFTER = OpenAPIHeader(
    schema=Schema(type=OpenAPIType.INTEGER, minimum=1),
    required=True,
    description="seconds to wait before the next request",
)
NEEDS = {Role.APP: NEEDS_APP, Role.ADMIN: NEEDS_ADMIN}
BODY_METHODS = {"POST", "PUT", "PATCH"}
PARAMETERS = (PathParameter, QueryParameter, HeaderParameter, CookieParameter)
# Litestar's own error shape, which it documents as a 400 on every route that takes parameters;
# no error leaves in it (entrypoints/http/errors.py answers them all in the envelope).
LITESTAR_ERROR = {"status_code", "detail", "extra"}


def rules_of(use_case: type) -> str:
    """A route's description: the rules of the use case it calls, as its class docstring states
    them (a use case without one fails at import, not in the served schema)."""
    if not use_case.__doc__:
        raise TypeError(f"{use_case.__qualname__} has no docstring to describe its route")
    return inspect.cleandoc(use_case.__doc__)


@dataclass
class EnvelopedOperation(Operation):
    """An operation without Litestar's own error response, and with `Retry-After` on its 429
    and its 503."""

    def __post_init__(self) -> None:
        responses = self.responses or {}
        for status, response in list(responses.items()):
            if _litestars_error(response):
                del responses[status]
        for status in ("429", "503"):
            if isinstance(told_when := responses.get(status), OpenAPIResponse):
                told_when.headers = {"Retry-After": RETRY_AFTER}


def declare_responses(routes: Iterable[Router | HTTPRouteHandler]) -> None:
    """Give every route the errors that its guards, body and parameters can answer, besides
    those it declares itself (whose descriptions, more particular, win): 401, 403, 429 and 503
    behind the API-key guard, 400, 413 and 422 where a body is read or parameters are validated; and
    the 200 of a replay where a route stores."""
    for handler in _handlers(routes):
        declared = {
            **documented(_answered(handler)),
            **_replay(handler),
            **(handler.responses or {}),
        }
        handler.responses = dict(sorted(declared.items()))
        handler.operation_class = EnvelopedOperation


def _handlers(routes: Iterable[Router | HTTPRouteHandler]) -> Iterable[HTTPRouteHandler]:
    for route in routes:
        if isinstance(route, HTTPRouteHandler):
            yield route
            continue
        for path in route.routes:
            if isinstance(path, HTTPRoute):
                yield from path.route_handlers


def _replay(handler: HTTPRouteHandler) -> dict[int, ResponseSpec]:
    # A route that stores (201) and picks its status as it answers (it returns a Response)
    # answers the same request again with 200 and what it stored: idempotent by id or key.
    returned = handler.parsed_fn_signature.return_type
    if handler.status_code != HTTP_201_CREATED or returned.origin is not Response:
        return {}
    stored = returned.inner_types[0].annotation
    return {HTTP_200_OK: ResponseSpec(stored, description=REPLAYED, generate_examples=False)}


def _answered(handler: HTTPRouteHandler) -> dict[int, str]:
    errors: dict[int, str] = {}
    layers = handler.ownership_layers
    if any(admitted in (layer.guards or ()) for layer in layers):
        errors[401] = AUTH
        # The guard reads the role the innermost layer names (Litestar merges `opt` downwards).
        opts = [layer.opt or {} for layer in reversed(layers)]
        role = next((opt[ROLE] for opt in opts if ROLE in opt), None)
        if role in NEEDS:
            errors[403] = NEEDS[role]
        errors[429] = RATE_LIMITED
        errors[503] = UNAVAILABLE  # the key is looked up in the storage
    signature = handler.parsed_fn_signature.parameters
    if handler.http_methods & BODY_METHODS:
        errors[413] = "the body is larger than the server takes (`max_body_bytes`)"
    body = BODY_PARAMETER in signature
    if body:
        errors[400] = "the body is not JSON"
    parameters = any(isinstance(p.kwarg_definition, PARAMETERS) for p in signature.values())
    if parameters or body:
        read = [what for what, yes in (("a parameter", parameters), ("the body", body)) if yes]
        errors[422] = f"{' or '.join(read)} is invalid (`fields` names where)"
    return errors


def _litestars_error(response: OpenAPIResponse | Reference) -> bool:
    media_types = (response.content or {}).values() if isinstance(response, OpenAPIResponse) else ()
    return any(
        isinstance(m.schema, Schema) and set(m.schema.properties or ()) == LITESTAR_ERROR
        for m in media_types
    )


class RawItemSchemas(OpenAPISchemaPlugin):
    """A raw batch item (`Annotated[msgspec.Raw, documented_as(T)]`) in the schema: a `T`. The
    batch routes decode each item on their own; without this, clients generating code from the
    schema saw their items as any JSON value."""

    def is_plugin_supported_field(self, field_definition: FieldDefinition) -> bool:
        return _documented_as(field_definition) is not None

    def to_openapi_schema(
        self, field_definition: FieldDefinition, schema_creator: "SchemaCreator"
    ) -> Schema:
        item = _documented_as(field_definition)
        schema = schema_creator.for_field_definition(FieldDefinition.from_annotation(item))
        return cast(Schema, schema)  # a Reference to the item's component, which serves as one


def _documented_as(field_definition: FieldDefinition) -> type | None:
    if field_definition.annotation is not msgspec.Raw:
        return None
    for meta in field_definition.metadata:
        if isinstance(meta, msgspec.Meta) and meta.extra and DOCUMENTED_AS in meta.extra:
            item: type = meta.extra[DOCUMENTED_AS]
            return item
    return None
