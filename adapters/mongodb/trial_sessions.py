"""Trial sessions counted by one aggregation: each session looks up its subject's subscription
in force at its start (the history's last entry set by then), the trial ones are grouped per
subject, and each subject looks up one paid subscription set after its first trial session."""

from datetime import datetime

from pymongo.asynchronous.database import AsyncDatabase

from adapters.mongodb.documents import Document
from adapters.mongodb.errors import raises_storage_errors
from application.trials.ports import TrialSessions
from domain.trial_report import FreeTrial, TrialUse


@raises_storage_errors
class MongoTrialSessions(TrialSessions):
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._sessions = db["sessions"]
        self._history = db["subscription_history"]

    async def use(
        self, tenant_id: str, start: datetime, end: datetime, trial: FreeTrial
    ) -> TrialUse:
        pipeline: list[Document] = [
            {
                "$match": {
                    "tenant_id": tenant_id,
                    "started_at": {"$gte": start, "$lt": end},
                    "subject_id": {"$ne": None},
                    "kind": {"$in": sorted(trial.kinds)},
                }
            },
            self._of_subject(
                tenant_id,
                {"at": "$started_at"},
                {"$lte": ["$set_at", "$$at"]},
                [{"$sort": {"number": -1}}, {"$limit": 1}],
                "in_force",
            ),
            {"$unwind": {"path": "$in_force", "preserveNullAndEmptyArrays": True}},
            {"$match": {"$nor": [_subscribed(trial)]}},
            {
                "$group": {
                    "_id": "$subject_id",
                    "sessions": {"$sum": 1},
                    "first": {"$min": "$started_at"},
                }
            },
            {"$set": {"subject_id": "$_id"}},
            self._of_subject(
                tenant_id,
                {"first": "$first"},
                {"$gt": ["$set_at", "$$first"]},
                [{"$match": {"plan_id": {"$in": sorted(trial.paid_plans)}}}, {"$limit": 1}],
                "paid",
            ),
            {
                "$group": {
                    "_id": None,
                    "subjects": {"$sum": 1},
                    "sessions": {"$sum": "$sessions"},
                    "conversions": {"$sum": {"$cond": [{"$gt": [{"$size": "$paid"}, 0]}, 1, 0]}},
                }
            },
        ]
        # On empty input a real mongod gives no document, an emulator may give zeros.
        found = await (await self._sessions.aggregate(pipeline)).to_list(None)
        if not found:
            return TrialUse()
        return TrialUse(found[0]["subjects"], found[0]["sessions"], found[0]["conversions"])

    def _of_subject(
        self,
        tenant_id: str,
        let: Document,
        condition: Document,
        then: list[Document],
        into: str,
    ) -> Document:
        """A $lookup of the document's subject's history entries meeting `condition`."""
        same_subject = {"$eq": ["$subject_id", "$$subject"]}
        return {
            "$lookup": {
                "from": self._history.name,
                "let": {"subject": "$subject_id", **let},
                "pipeline": [
                    {
                        "$match": {
                            "tenant_id": tenant_id,
                            "$expr": {"$and": [same_subject, condition]},
                        }
                    },
                    *then,
                    {"$project": {"_id": 0, "plan_id": 1, "starts_at": 1, "ends_at": 1}},
                ],
                "as": into,
            }
        }


def _subscribed(trial: FreeTrial) -> Document:
    """The session's subscription in force (`in_force`) is active at its start and to one of
    the tenant's plans (`FreeTrial.counts`)."""
    return {
        "in_force.plan_id": {"$in": sorted(trial.plans)},
        "$expr": {
            "$and": [
                {"$lt": ["$started_at", "$in_force.ends_at"]},
                # A missing start is no bound; null sorts before every date.
                {"$lte": [{"$ifNull": ["$in_force.starts_at", None]}, "$started_at"]},
            ]
        },
    }
