from typing import Any

from litestar import Request, post
from litestar.di import NamedDependency

from application.livekit.receive_livekit_webhook import ReceiveLiveKitWebhook
from domain.errors import Unauthorized
from entrypoints.http.schemas import StatusOut


@post(
    "/v1/webhooks/livekit",
    tags=["webhooks"],
    summary="LiveKit's webhooks (signed with a registered API key): participants become sessions",
    status_code=200,
)
async def livekit_webhook(
    request: Request[Any, Any, Any],
    receive_livekit_webhook: NamedDependency[ReceiveLiveKitWebhook],
) -> StatusOut:
    # The raw body, as signed: re-serialised JSON would not match the token's hash.
    try:
        body = (await request.body()).decode()
    except UnicodeDecodeError:
        raise Unauthorized("the webhook's signature does not match its body") from None
    await receive_livekit_webhook(body, request.headers.get("authorization", ""))
    return StatusOut("ok")
