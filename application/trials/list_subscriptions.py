"""Read back a subject's subscription history."""

from dataclasses import dataclass

from application.pagination import Page, page_of_whole
from application.trials.ports import SubscriptionRepository
from domain.plans import SubscriptionSet


@dataclass(frozen=True)
class ListSubscriptionsQuery:
    tenant_id: str
    subject_id: str
    limit: int | None = None
    cursor: str | None = None


class ListSubscriptions:
    """Every subscription ever put for the subject, newest first, each with when it was set:
    the first is the subject's current subscription (in force between its dates), the others
    were replaced by a later one, whether or not they had ended. A subject never subscribed
    has an empty history. After the subject's erasure its history belongs to the pseudonym.
    A page at a time: up to `limit` (default 50, at most 500), and a cursor for the next page
    while there are more."""

    def __init__(self, subscriptions: SubscriptionRepository) -> None:
        self._subscriptions = subscriptions

    async def __call__(self, query: ListSubscriptionsQuery) -> Page[SubscriptionSet]:
        history = await self._subscriptions.history(query.tenant_id, query.subject_id)
        return page_of_whole(
            history, query.limit, query.cursor, lambda e: [e.number], descending=True
        )
