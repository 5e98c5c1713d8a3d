"""Read back a subject's subscription history."""

from dataclasses import dataclass

from application.trials.ports import SubscriptionRepository
from domain.plans import SubscriptionSet


@dataclass(frozen=True)
class ListSubscriptionsQuery:
    tenant_id: str
    subject_id: str


class ListSubscriptions:
    """Every subscription ever put for the subject, newest first, each with when it was set:
    the first is the subject's current subscription (in force between its dates), the others
    were replaced by a later one, whether or not they had ended. A subject never subscribed
    has an empty history. After the subject's erasure its history belongs to the pseudonym."""

    def __init__(self, subscriptions: SubscriptionRepository) -> None:
        self._subscriptions = subscriptions

    async def __call__(self, query: ListSubscriptionsQuery) -> list[SubscriptionSet]:
        return await self._subscriptions.history(query.tenant_id, query.subject_id)
