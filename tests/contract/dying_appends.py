"""MongoDB appends that die partway: their one command cut short, as a crash between two of its
steps leaves it (adapters/mongodb/event_counting.py)."""

from typing import Any

import pytest
from pymongo import AsyncMongoClient


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
