from litestar import Controller, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from application.livekit.set_livekit_url import SetLiveKitUrl
from application.tenants.authenticate import Principal
from domain.tenants import Role
from entrypoints.http.auth import current_principal, requires
from entrypoints.http.errors import documented
from entrypoints.http.schemas import LiveKitAccountOut, LiveKitUrlBody


class LiveKitAccountController(Controller):
    """The tenant's LiveKit API keys (registered by an operator: `sessionmeter livekit add`)."""

    path = "/v1/livekit/accounts"
    tags = ["livekit"]
    guards = [requires(Role.ADMIN)]
    dependencies = {"caller": current_principal}

    @put(
        "/{api_key:str}",
        summary="Set the URL of the LiveKit server behind an API key (null: webhooks only)",
        description="With a URL, reconciliation asks that server who is in the rooms of open "
        "stays: a participant still there was seen now, one who left ends where last seen.",
        responses=documented(
            {
                400: "the body is not JSON",
                401: "the API key of the request is missing, unknown, revoked or expired",
                403: "the key is not an admin key",
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
        return LiveKitAccountOut.of(await set_livekit_url(caller.tenant.id, api_key, data.url))
