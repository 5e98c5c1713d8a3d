"""MongoDB appends that die partway: their one command cut short, as a crash between two of its
steps leaves it (adapters/mongodb/event_counting.py)."""

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from adapters.mongodb import event_counting
from adapters.mongodb.documents import Document
from domain.session import Session
from domain.tenants import Tenant
from tests.contract.builders import NOW, OPEN


def next_append_dies(monkeypatch: pytest.MonkeyPatch, keeps: Any) -> None:
    """The next append's one command does only the writes `keeps` keeps, then its process dies."""
    real = AsyncMongoClient.bulk_write
    calls = 0

    async def dies_once(client: Any, writes: list[Any], **options: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            await real(client, [w for w in writes if keeps(w)], **options)
            raise ConnectionError("the process died")
        return await real(client, writes, **options)

    monkeypatch.setattr(AsyncMongoClient, "bulk_write", dies_once)


async def marked(storage: Any, session: Session) -> list[Document]:
    """The session's events still marked by an append that has not counted them."""
    query = {"session_id": session.id, "batch": {"$exists": True}}
    found: list[Document] = await storage.events._db["events"].find(query).to_list(None)
    return found


async def counts_later(
    storage: Any,
    tenant: Tenant,
    documents: list[Document],
    seconds: float,
    now: datetime = NOW,
    window: timedelta = OPEN,
) -> None:
    """The append that stored `documents` counts them `seconds` from now, on its own clock (it
    was slow, not dead)."""
    await asyncio.sleep(seconds)
    await event_counting.finish_batches(storage.events._db, tenant.id, documents, now, window)
