"""What recording errors, metrics and sales share: each record is judged on its own, stored once
by its client id, and its session, if it names one, must exist."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic

from application.ports import Clock
from application.rollups.rollup_rewinds import RollupRewinds
from application.sessions.ports import SessionRepository
from application.telemetry.ports import Added, RecordLog, SessionGone
from application.telemetry.ports import Record as R
from domain.clock import not_in_future
from domain.errors import Conflict, DomainError, InvalidInput, PayloadTooLarge
from domain.tenants import Access

MAX_BATCH = 100


@dataclass(frozen=True)
class ItemOutcome(Generic[R]):
    """What became of one record: stored now (created), stored before (a replay: `record` is
    what was stored), or refused, with why."""

    record: R | None
    created: bool = False
    refused: InvalidInput | Conflict | None = None


@dataclass(frozen=True)
class Rejection:
    index: int
    error: str  # "validation_error: <field>: <why>" or "conflict: <why>"


@dataclass(frozen=True)
class Recorded(Generic[R]):
    """Every record's outcome, in the order sent."""

    items: list[ItemOutcome[R]]

    @property
    def inserted(self) -> int:
        return sum(i.created for i in self.items)

    @property
    def duplicates(self) -> int:
        return sum(i.record is not None and not i.created for i in self.items)

    @property
    def rejections(self) -> list[Rejection]:
        return [
            Rejection(index, _reason(item.refused))
            for index, item in enumerate(self.items)
            if item.refused is not None
        ]

    def only(self) -> R:
        """The record of a batch of one, or why it was refused (raised)."""
        (item,) = self.items
        if item.refused is not None:
            raise item.refused
        assert item.record is not None
        return item.record


def _reason(error: DomainError) -> str:
    if isinstance(error, InvalidInput):
        return f"validation_error: {error.field}: {error.message}"
    return f"conflict: {error.detail}"


ID_TAKEN = "the id is taken by a record with other content"
NO_SESSION = "no such session in this tenant"
NOT_STORED = "names a record of the batch that was not stored"


class RecordOnce(Generic[R]):
    """Stores a batch as the three record use cases do (their docstrings state the rules)."""

    def __init__(
        self,
        log: RecordLog[R],
        sessions: SessionRepository,
        clock: Clock,
        instant: Callable[[R], tuple[str, datetime]],
        same: Callable[[R, R], bool],
        rewinds: RollupRewinds | None = None,
    ) -> None:
        self._log = log
        self._sessions = sessions
        self._clock = clock
        self._instant = instant
        self._same = same
        self._rewinds = rewinds  # given: the records of a session count in its hours' rollups

    async def check_batch(
        self, tenant_id: str, records: Sequence[R | InvalidInput], name: str, access: Access
    ) -> None:
        """Refuse a batch whole if it is too large, or if a key scoped to resources sends a
        record of another device or naming another resource's session (`forbidden`): a
        device's key sends only its own telemetry."""
        if len(records) > MAX_BATCH:
            raise PayloadTooLarge(f"a batch holds at most {MAX_BATCH} {name}")
        if access.resources is None:
            return
        readable = [r for r in records if not isinstance(r, InvalidInput)]
        for record in readable:
            access.check_scope(record.device_id)
        for session_id in sorted({r.session_id for r in readable if r.session_id}):
            session = await self._sessions.get(tenant_id, session_id)
            if session is not None:  # an unknown one is refused item by item later
                access.check_scope(session.resource_id)

    async def __call__(
        self,
        tenant_id: str,
        records: Sequence[R | InvalidInput],
        check: Callable[[R], InvalidInput | None] = lambda _: None,
        names: Callable[[R], tuple[str, str] | None] = lambda _: None,
    ) -> Recorded[R]:
        """`check`: a further rule of the caller's, judged after the shared ones, on each record
        they take, in batch order. `names`: the field and id of another record a record names
        (a refund its sale); when that is a record of the batch, it is stored first, and the
        record only if that one is stored (the add may still refuse it: SESSION_GONE)."""
        now = self._clock.now()
        outcomes: dict[int, ItemOutcome[R]] = {}
        candidates: list[tuple[int, R]] = []
        for i, record in enumerate(records):
            try:
                if isinstance(record, InvalidInput):
                    raise record
                not_in_future(*self._instant(record), now)
            except InvalidInput as error:
                outcomes[i] = ItemOutcome(None, refused=error)
            else:
                candidates.append((i, record))
        named = {r.session_id for _, r in candidates if r.session_id}
        known = await self._sessions.existing(tenant_id, named) if named else set()
        to_store: list[tuple[int, R]] = []
        for i, record in candidates:
            if record.session_id and record.session_id not in known:
                refusal: InvalidInput | None = InvalidInput("session_id", NO_SESSION)
            else:
                refusal = check(record)
            if refusal is None:
                to_store.append((i, record))
            else:
                outcomes[i] = ItemOutcome(None, refused=refusal)
        # A record naming another of the batch is stored after it, and only if that one was:
        # the add may still refuse it (SESSION_GONE).
        in_batch = {r.id for _, r in to_store}
        waiting = {i: n for i, r in to_store if (n := names(r)) is not None and n[1] in in_batch}
        await self._store(tenant_id, [p for p in to_store if p[0] not in waiting], outcomes)
        kept = {r.id for i, r in to_store if i not in waiting and outcomes[i].refused is None}
        for i, (field_name, named_id) in waiting.items():
            if named_id not in kept:
                outcomes[i] = ItemOutcome(None, refused=InvalidInput(field_name, NOT_STORED))
        then = [p for p in to_store if p[0] in waiting and p[0] not in outcomes]
        await self._store(tenant_id, then, outcomes)
        recorded = Recorded([outcomes[i] for i in range(len(records))])
        await self._rewind(tenant_id, recorded)
        return recorded

    async def _rewind(self, tenant_id: str, recorded: Recorded[R]) -> None:
        """Hours rolled up already that a new record of a session counts in (a kiosk flushing
        its buffer) are rolled up again; a replay's too, as its first send may have failed
        after its insert (a 503)."""
        dated = [
            self._instant(item.record)[1]
            for item in recorded.items
            if item.refused is None and item.record is not None and item.record.session_id
        ]
        if self._rewinds is not None and dated:
            await self._rewinds.changed_since(tenant_id, min(dated))

    async def _store(
        self, tenant_id: str, to_store: list[tuple[int, R]], outcomes: dict[int, ItemOutcome[R]]
    ) -> None:
        stored = await self._log.add(tenant_id, [r for _, r in to_store]) if to_store else []
        for (i, record), before in zip(to_store, stored, strict=True):
            outcomes[i] = self._judged(record, before)

    def _judged(self, record: R, before: Added[R]) -> ItemOutcome[R]:
        if isinstance(before, SessionGone):  # deleted since it was checked above
            return ItemOutcome(None, refused=InvalidInput("session_id", NO_SESSION))
        if isinstance(before, InvalidInput):  # refused as it was stored (a refund too large)
            return ItemOutcome(None, refused=before)
        if before is None:
            return ItemOutcome(record, created=True)
        if self._same(before, record):
            return ItemOutcome(before)
        return ItemOutcome(None, refused=Conflict(ID_TAKEN))
