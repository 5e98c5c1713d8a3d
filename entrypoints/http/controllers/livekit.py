"""LiveKit: the tenant's accounts (under /v1, with an admin key) and LiveKit's own webhooks."""

from typing import Any

from litestar import Controller, Request, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from application.livekit.receive_livekit_webhook import (
    ReceivedWebhook,
    ReceiveLiveKitWebhook,
    ReceiveLiveKitWebhookCommand,
)
from application.livekit.set_livekit_url import SetLiveKitUrl, SetLiveKitUrlCommand
from application.tenants.authenticate import Principal
from domain.errors import Contended, DomainError, Unauthorized
from domain.livekit import KIND
from domain.tenants import Role
from entrypoints.http.auth import NEEDS_ADMIN, needs
from entrypoints.http.called_directly import CalledDirectly
from entrypoints.http.errors import documented
from entrypoints.http.metrics import Metrics
from entrypoints.http.openapi import UNAVAILABLE, rules_of
from entrypoints.http.schemas.common import StatusOut
from entrypoints.http.schemas.livekit import LiveKitAccountOut, LiveKitUrlBody


class LiveKitController(Controller):
    """The tenant's LiveKit API keys (registered by an operator: `sessionmeter livekit add`)."""

    path = "/livekit/accounts"
    tags = ["livekit"]
    opt = needs(Role.ADMIN)

    @put(
        "/{api_key:str}",
        summary="Set the URL of the LiveKit server behind an API key (null: webhooks only)",
        operation_id="setLiveKitUrl",
        description=rules_of(SetLiveKitUrl),
        responses=documented(
            {
                400: "the body is not JSON",
                401: "the API key of the request is missing, unknown, revoked or expired",
                403: NEEDS_ADMIN,
                404: "the LiveKit API key is not one of this tenant's",
                422: "the url is not an http(s) URL of at most 500 characters",
            }
        ),
    )
    async def set_url(
        self,
        api_key: FromPath[str],
        data: JSONBody[LiveKitUrlBody],
        caller: NamedDependency[Principal],
        set_livekit_url: NamedDependency[SetLiveKitUrl],
    ) -> LiveKitAccountOut:
        command = SetLiveKitUrlCommand(caller.tenant.id, api_key, data.url)
        return LiveKitAccountOut.of(await set_livekit_url(command))


# Not under the /v1 router: LiveKit holds no API key of ours, it signs each webhook instead.
@post(
    "/v1/webhooks/livekit",
    tags=["webhooks"],
    summary="LiveKit's webhooks (signed with a registered API key): participants become sessions",
    operation_id="receiveLiveKitWebhook",
    description=rules_of(ReceiveLiveKitWebhook),
    status_code=200,
    responses=documented(
        {
            401: "the signature (Authorization) is missing, not of a registered LiveKit API key, "
            "or does not match the body",
            503: UNAVAILABLE,
        }
    ),
    middleware=[CalledDirectly],
)
async def livekit_webhook(
    request: Request[Any, Any, Any],
    receive_livekit_webhook: NamedDependency[ReceiveLiveKitWebhook],
    metrics: NamedDependency[Metrics],
) -> StatusOut:
    try:
        received = await _receive(request, receive_livekit_webhook)
    except DomainError as error:
        # A contended write is ours to fail, not the webhook's: LiveKit sends it again.
        metrics.webhook("failed" if isinstance(error, Contended) else "refused")
        raise
    except Exception:
        metrics.webhook("failed")
        raise
    metrics.webhook("redelivered" if received.redelivered else "handled")
    if received.started:
        metrics.session_started(KIND)
    for stay in received.ended:
        metrics.sessions_closed(KIND, stay.session.status, "webhook")
    return StatusOut("ok")


async def _receive(
    request: Request[Any, Any, Any], receive_livekit_webhook: ReceiveLiveKitWebhook
) -> ReceivedWebhook:
    # The raw body, as signed: re-serialised JSON would not match the token's hash.
    try:
        body = (await request.body()).decode()
    except UnicodeDecodeError:
        raise Unauthorized("the webhook's signature does not match its body") from None
    token = request.headers.get("authorization", "")
    return await receive_livekit_webhook(ReceiveLiveKitWebhookCommand(body, token))
