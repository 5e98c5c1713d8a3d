"""Sessions to documents and back, with their event gaps."""

from pymongo.asynchronous.database import AsyncDatabase

from adapters.mongodb.documents import Document, usage_from_document, usage_to_document
from domain.event_gaps import find_gaps, gaps_beside_deleted, merged
from domain.session import Charge, ChargeState, Session, SessionStatus

# How many sales of a session are stored or being stored, counted before they are: session
# retention leaves a session that counts any alone (MongoSaleBook). Not a field of Session: no
# other reader needs it.
KEPT_FOR_SALES = "kept_for_sales"
HAS_SALES = {KEPT_FOR_SALES: {"$gt": 0}}
NO_SALES = {KEPT_FOR_SALES: {"$not": {"$gt": 0}}}


def to_document(session: Session) -> Document:
    charge = session.charge
    return {
        "tenant_id": session.tenant_id,
        "id": session.id,
        "kind": session.kind,
        "resource_id": session.resource_id,
        "subject_id": session.subject_id,
        "client_key": session.client_key,
        "status": session.status.value,
        "started_at": session.started_at,
        "last_seen_at": session.last_seen_at,
        "ended_at": session.ended_at,
        "attributes": session.attributes,
        "usage": usage_to_document(session.usage),
        "summary": session.summary,
        "exit_reason": session.exit_reason,
        "event_count": session.event_count,
        "max_sequence_no": session.max_sequence_no,
        "charge_state": session.charge_state.value,
        "charge_revision": session.charge_revision,
        "deleted_events": [list(numbers) for numbers in session.deleted_events],
        "charge": None
        if charge is None
        else {
            "credits": charge.credits,
            "balance_after": charge.balance_after,
            "warning": charge.warning,
        },
    }


def from_document(document: Document) -> Session:
    """The session as stored, without its event gaps (see `load`)."""
    charge = document.get("charge")
    return Session(
        tenant_id=document["tenant_id"],
        id=document["id"],
        kind=document["kind"],
        resource_id=document["resource_id"],
        subject_id=document["subject_id"],
        client_key=document["client_key"],
        started_at=document["started_at"],
        last_seen_at=document["last_seen_at"],
        status=SessionStatus(document["status"]),
        ended_at=document["ended_at"],
        attributes=document["attributes"],
        usage=usage_from_document(document.get("usage")),
        event_count=document["event_count"],
        max_sequence_no=document["max_sequence_no"],
        summary=document["summary"],
        exit_reason=document["exit_reason"],
        charge=None
        if charge is None
        else Charge(charge["credits"], charge["balance_after"], charge["warning"]),
        charge_state=ChargeState(document["charge_state"]),
        charge_revision=document.get("charge_revision", 0),
        # Retention pushes ranges as it deletes (retention.py): joined here.
        deleted_events=merged((first, last) for first, last in document.get("deleted_events", ())),
    )


async def load(db: AsyncDatabase[Document], document: Document) -> Session:
    """The session with its event gaps, read only for sessions that have some."""
    session = from_document(document)
    if has_gaps(session):
        cursor = db["events"].find(
            {"tenant_id": session.tenant_id, "session_id": session.id},
            {"_id": 0, "sequence_no": 1},
            sort=[("sequence_no", 1)],
        )
        with_gaps(session, [e["sequence_no"] async for e in cursor])
    return session


def has_gaps(session: Session) -> bool:
    """Whether some of the numbers up to the session's highest are not among its events."""
    return session.event_count < session.max_sequence_no


def with_gaps(session: Session, numbers: list[int]) -> Session:
    """The session, its event gaps found among the `numbers` of its stored events (in order)."""
    session.event_gaps = gaps_beside_deleted(
        find_gaps(numbers),
        numbers[-1] if numbers else 0,
        session.max_sequence_no,
        session.deleted_events,
    )
    return session
