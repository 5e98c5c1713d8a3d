"""The answers of subject erasure and resource deletion: what each changed."""

from typing import Annotated

import msgspec

from application.data_rights.delete_resource import DeletedResource
from application.data_rights.ports import Erased

Count = Annotated[int, msgspec.Meta(ge=0)]


class ErasedOut(msgspec.Struct):
    """What lost its personal data (all zero when there was nothing left to erase)."""

    sessions: Annotated[Count, msgspec.Meta(description="sessions erased")]
    events: Annotated[Count, msgspec.Meta(description="their events that lost data or label")]
    errors: Annotated[Count, msgspec.Meta(description="device errors of those sessions")]
    sales: Annotated[Count, msgspec.Meta(description="sales of those sessions")]

    @classmethod
    def of(cls, e: Erased) -> "ErasedOut":
        return cls(e.sessions, e.events, e.errors, e.sales)


class DeletedResourceOut(msgspec.Struct):
    """What went (all zero when nothing of the resource was left)."""

    sessions: Annotated[Count, msgspec.Meta(description="sessions deleted")]
    events: Annotated[Count, msgspec.Meta(description="events deleted with them")]
    rollups: Annotated[Count, msgspec.Meta(description="rolled-up (bucket, kind) rows removed")]
    erased: Annotated[
        ErasedOut,
        msgspec.Meta(description="sessions kept for a sale or a charge, erased instead"),
    ]

    @classmethod
    def of(cls, d: DeletedResource) -> "DeletedResourceOut":
        return cls(d.sessions, d.events, d.rollups, ErasedOut.of(d.erased))
