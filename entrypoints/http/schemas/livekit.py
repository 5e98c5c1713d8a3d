"""The bodies of the tenant's LiveKit accounts (the webhooks are LiveKit's own, signed)."""

from typing import Annotated

import msgspec

from domain.livekit import LiveKitAccount


class LiveKitUrlBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    url: Annotated[
        str | None,
        msgspec.Meta(description="The LiveKit server's http(s) URL; null: webhooks only"),
    ]


class LiveKitAccountOut(msgspec.Struct):
    api_key: str
    url: str | None

    @classmethod
    def of(cls, account: LiveKitAccount) -> "LiveKitAccountOut":
        return cls(account.api_key, account.url)  # never the secret
