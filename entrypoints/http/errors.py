"""Every error leaves as `{"error": code, "detail": text}`; nothing else reaches a client."""

import logging
import re
from typing import Any

import msgspec
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.openapi import ResponseSpec
from litestar.status_codes import (
    HTTP_402_PAYMENT_REQUIRED,
    HTTP_429_TOO_MANY_REQUESTS,
    HTTP_500_INTERNAL_SERVER_ERROR,
    HTTP_503_SERVICE_UNAVAILABLE,
)
from litestar.types import ExceptionHandlersMap

from application.storage import StorageError
from domain.errors import (
    Conflict,
    Contended,
    DomainError,
    Forbidden,
    InsufficientCredits,
    InvalidInput,
    Late,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
)
from domain.plans import QuotaExceeded, TrialExhausted
from domain.sales import SettlementMoveRefused
from entrypoints.http.metrics import UNMATCHED, Metrics
from entrypoints.http.request import BODY_PARAMETER
from entrypoints.http.schemas.common import ErrorOut, ValidationErrorOut
from entrypoints.http.schemas.trials import TrialStatusOut

log = logging.getLogger(__name__)

# In order: the first class an error is an instance of gives its answer.
DOMAIN_ERRORS: dict[type[DomainError], tuple[int, str]] = {
    Contended: (503, "unavailable"),
    InvalidInput: (422, "validation_error"),
    NotFound: (404, "not_found"),
    Conflict: (409, "conflict"),
    PayloadTooLarge: (413, "payload_too_large"),
    Unauthorized: (401, "unauthorized"),
    Forbidden: (403, "forbidden"),
    InsufficientCredits: (402, "insufficient_credits"),
    TrialExhausted: (402, "trial_exhausted"),
    QuotaExceeded: (402, "quota_exceeded"),
}
HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    503: "unavailable",
}
# How Litestar says a client left while its body was read (a slow one cut off by the request
# deadline, or one that hung up): the client's doing, answered to no one, not an error of ours.
CLIENT_GONE = "client disconnected prematurely"
_PATH = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<name>[^`]+)`")
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<name>[^`]+)`")
_BOUND = re.compile(r"^Expected `(?:int|float)` (?P<op>[<>]=?) (?P<limit>\S+)$")
_LENGTH = re.compile(r"^Expected `array` of length (?P<op>[<>]=?) (?P<limit>\d+)$")
_BOUND_WORDS = {"<=": "at most", ">=": "at least", "<": "below", ">": "above"}
# Seconds a client waits before it sends again what a 503 refused: a contended write passes
# at once, a database being restarted or failed over takes a few seconds.
RETRY_CONTENDED_AFTER = 1
RETRY_STORAGE_AFTER = 5
_MISSING_PARAMETER = re.compile(r"Missing required \w+ parameter '(?P<name>[^']+)'")


def error_response(
    status: int, code: str, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> Response[Any]:
    return Response(
        {"error": code, "detail": detail, **extra},
        status_code=status,
        media_type=MediaType.JSON,
        headers=headers,
    )


def invalid(fields: list[dict[str, str]]) -> Response[Any]:
    detail = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
    return error_response(422, "validation_error", detail, fields=fields)


def field_error(error: msgspec.ValidationError) -> dict[str, str]:
    """msgspec says "Expected `str`, got `int` - at `$.events[3].type`"; split off the path."""
    message = str(error)
    match = _PATH.search(message)
    path = match["path"] if match else ""
    if match:
        message = message[: match.start()]
    if missing := _MISSING.match(message):
        path = f"{path}.{missing['name']}" if path else missing["name"]
        message = "is required"
    elif unknown := _UNKNOWN.match(message):  # a typo in a configuration body is not ignored
        path = f"{path}.{unknown['name']}" if path else unknown["name"]
        message = "is not a field of this body"
    elif bound := _BOUND.match(message):  # "Expected `int` <= 1000000": the product's words
        message = f"must be {_BOUND_WORDS[bound['op']]} {bound['limit']}"
    elif length := _LENGTH.match(message):  # "Expected `array` of length >= 2"
        message = f"must have {_BOUND_WORDS[length['op']]} {length['limit']} items"
    return {"field": path or "body", "message": message}


class InsufficientCreditsOut(msgspec.Struct, tag_field="error", tag="insufficient_credits"):
    detail: str
    balance: int
    required: int


class TrialExhaustedOut(msgspec.Struct, tag_field="error", tag="trial_exhausted"):
    detail: str
    trial_status: TrialStatusOut
    upgrade_url: str | None


class QuotaOut(msgspec.Struct):
    resources_per_month: int
    resources_this_month: int


class QuotaExceededOut(msgspec.Struct, tag_field="error", tag="quota_exceeded"):
    detail: str
    limits: QuotaOut


# A 402's envelope carries the particulars of its code (`_particulars`), one schema per code.
PaymentRequiredOut = InsufficientCreditsOut | TrialExhaustedOut | QuotaExceededOut
_ENVELOPES: dict[int, Any] = {402: PaymentRequiredOut, 422: ValidationErrorOut}


def documented(errors: dict[int, str]) -> dict[int, ResponseSpec]:
    """The OpenAPI responses of the errors a route answers (status: when), in their envelope;
    a status with one error code is described with it (402 has several: say which in `when`)."""
    return {
        status: ResponseSpec(
            _ENVELOPES.get(status, ErrorOut),
            description=f"`{code}`: {when}" if (code := _single_code(status)) else when,
            generate_examples=False,
        )
        for status, when in errors.items()
    }


def _single_code(status: int) -> str | None:
    # On a route with a body, a 400 is a body that is not JSON (bad parameters are 422s).
    return {400: "malformed_json", 422: "validation_error"}.get(status, HTTP_CODES.get(status))


def on_domain_error(request: Request[Any, Any, Any], error: DomainError) -> Response[Any]:
    if isinstance(error, InvalidInput):
        fields = [{"field": error.field, "message": error.message}]
        if isinstance(error, Late):
            return error_response(422, "late", error.detail, fields=fields)
        return invalid(fields)
    status, code = next(v for k, v in DOMAIN_ERRORS.items() if isinstance(error, k))
    if status == HTTP_402_PAYMENT_REQUIRED:
        _refused(request, code)
    contended = status == HTTP_503_SERVICE_UNAVAILABLE
    headers = retry_after(RETRY_CONTENDED_AFTER) if contended else None
    return error_response(status, code, error.detail, headers, **_particulars(error))


def on_storage_error(request: Request[Any, Any, Any], error: StorageError) -> Response[Any]:
    """The store failed (down, unreachable, not migrated): the operator reads why in the log,
    and the client is told when to send the same request again (a write that was stored after
    all is answered as stored, by its id). A line, not a traceback: an outage fails every
    request, and the driver's first line says what an operator fixes."""
    log.error("%s %s: the storage failed: %s", request.method, _route(request), error)
    return error_response(
        HTTP_503_SERVICE_UNAVAILABLE,
        "unavailable",
        "the service's storage failed to answer; send the same request again after Retry-After "
        "seconds",
        retry_after(RETRY_STORAGE_AFTER),
    )


def _route(request: Request[Any, Any, Any]) -> str:
    """The route's template, as the request line logs it: a path may hold a subject's id."""
    return str(request.scope.get("path_template") or UNMATCHED)


def retry_after(seconds: int) -> dict[str, str]:
    """The header of a 503: when to send the same request again."""
    return {"Retry-After": str(seconds)}


def _refused(request: Request[Any, Any, Any], reason: str) -> None:
    """A refusal for payment or rate, counted in the metrics by its code."""
    metrics: Metrics = request.app.state.metrics
    metrics.refused(reason)


def _particulars(error: DomainError) -> dict[str, Any]:
    """What a client needs besides the code to act on a 402 or a refused settlement move."""
    if isinstance(error, InsufficientCredits):
        return {"balance": error.balance, "required": error.required}
    if isinstance(error, TrialExhausted):
        status = msgspec.to_builtins(TrialStatusOut.of(error.status))
        return {"trial_status": status, "upgrade_url": error.upgrade_url}
    if isinstance(error, QuotaExceeded):
        return {"limits": {"resources_per_month": error.limit, "resources_this_month": error.used}}
    if isinstance(error, SettlementMoveRefused):
        return {"current_state": error.current}
    return {}


def on_malformed_json(_: Request[Any, Any, Any], error: msgspec.DecodeError) -> Response[Any]:
    return error_response(400, "malformed_json", f"the body is not valid JSON: {error}")


def on_invalid_body(_: Request[Any, Any, Any], error: msgspec.ValidationError) -> Response[Any]:
    return invalid([field_error(error)])


def on_invalid_parameters(
    request: Request[Any, Any, Any], error: ValidationException
) -> Response[Any]:
    extra = error.extra if isinstance(error.extra, list) else []
    fields = [
        _parameter_error(request, str(e.get("key", "request")), str(e.get("message", error.detail)))
        for e in extra
        if isinstance(e, dict)
    ]
    if not fields and (missing := _MISSING_PARAMETER.search(error.detail)):
        fields = [{"field": missing["name"], "message": "is required"}]
    return invalid(fields or [{"field": "request", "message": error.detail}])


def _parameter_error(request: Request[Any, Any, Any], key: str, message: str) -> dict[str, str]:
    """Litestar names a failed parameter by its Python name and a missing one by a bare KeyError
    ("'data'"); say it the way the client wrote it: `from`, not `started_from`; `body`, not `data`."""
    message = "is required" if message == repr(key) else message
    if key == BODY_PARAMETER:
        return {"field": "body", "message": message}
    parameter = request.route_handler.parsed_fn_signature.parameters.get(key)
    alias = getattr(parameter and parameter.kwarg_definition, "name", None)
    return {"field": alias or key, "message": message}


def on_http_error(request: Request[Any, Any, Any], error: HTTPException) -> Response[Any]:
    if error.detail == CLIENT_GONE:
        log.info("%s %s: %s", request.method, _route(request), CLIENT_GONE)
        return error_response(400, "bad_request", "the body did not arrive whole")
    if error.status_code >= HTTP_500_INTERNAL_SERVER_ERROR:
        # Litestar wraps unexpected exceptions in a 500 HTTPException before they get here.
        return on_unexpected(request, error)
    code = HTTP_CODES.get(error.status_code, "error")
    if error.status_code == HTTP_429_TOO_MANY_REQUESTS:
        _refused(request, code)
    detail = error.detail
    if isinstance(error, RequestEntityTooLarge):  # Litestar's words name no size and no remedy
        limit = request.route_handler.resolve_request_max_body_size()
        detail = f"the body is larger than the {limit} bytes it may be; send it in smaller parts"
    # Litestar's headers say how to recover (Allow on a 405), so they go out too.
    return error_response(error.status_code, code, detail, headers=error.headers)


def on_unexpected(request: Request[Any, Any, Any], error: Exception) -> Response[Any]:
    log.exception("unhandled error on %s %s", request.method, _route(request), exc_info=error)
    return error_response(
        HTTP_500_INTERNAL_SERVER_ERROR, "internal_error", "something went wrong on our side"
    )


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    DomainError: on_domain_error,
    msgspec.DecodeError: on_malformed_json,
    msgspec.ValidationError: on_invalid_body,
    ValidationException: on_invalid_parameters,
    HTTPException: on_http_error,
    StorageError: on_storage_error,
    Exception: on_unexpected,
}
