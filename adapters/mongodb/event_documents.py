"""Events to documents and back."""

from adapters.mongodb.documents import Document, usage_from_document, usage_to_document
from domain.events import Event


def to_document(tenant_id: str, event: Event) -> Document:
    return {
        "tenant_id": tenant_id,
        "session_id": event.session_id,
        "sequence_no": event.sequence_no,
        "type": event.type,
        "at": event.at,
        "category": event.category,
        "label": event.label,
        "data": event.data,
        "meters": usage_to_document(event.meters),
    }


def from_document(document: Document) -> Event:
    return Event(
        session_id=document["session_id"],
        sequence_no=document["sequence_no"],
        type=document["type"],
        at=document["at"],
        category=document["category"],
        label=document["label"],
        data=document["data"],
        meters=usage_from_document(document["meters"]),
    )
