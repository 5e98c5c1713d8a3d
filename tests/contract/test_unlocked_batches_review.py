"""Hostile review of the unlocked event batch on PostgreSQL (commit 66412e7:
event_batches.append_unless_changed with asyncpg_events.AsyncpgBatchWriter): its sessions
read unlocked, then one guarded statement that writes only if every session is free and as read.

Each test puts something between the unlocked read and the guarded write (or beside it), then
holds the outcome and the stored state to what the locked way alone gives when that something
happened first (EventLog.append: each event stored once and counted once with its usage,
duplicates add nothing, refusals as the session says at the moment of counting)."""

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from adapters.sqlalchemy import asyncpg_events, asyncpg_sessions, event_batches, events
from adapters.sqlalchemy.asyncpg_statements import asyncpg_connection
from domain.credits import Rate
from domain.erasure import Forgetting, Pseudonyms, is_pseudonym
from domain.events import MAX_SEQUENCE_NO, Event
from domain.session import ChargeState, Exit, Session
from domain.staleness import Staleness
from domain.tenants import Tenant
from domain.usage import Usage
from tests.contract.builders import NOW, OPEN, SHUT, a_grant, a_session, at, batch, stored_session
from tests.contract.test_grouped_statements import held
from tests.contract.test_sqlalchemy_specifics import on_postgresql

pytestmark = pytest.mark.anyio
Writer = asyncpg_events.AsyncpgBatchWriter
RATED = frozenset({"counseling"})
COUNSELING = Rate("counseling", 2)  # 2 credits a minute
Action = Callable[[], Awaitable[Any]]


def metered(session: Session, n: int, minutes: float | None = None, **meters: Any) -> Event:
    return Event(
        session.id, n, "tap", at(n if minutes is None else minutes), meters=meters or {"taps": 1}
    )


class Ways:
    """Switches between the unlocked way (with an action run between its read and its write)
    and the locked way alone, and counts what each did. `remembered`: the unlocked way starts
    from the sessions as this process remembers them (asyncpg_events, RememberedSessions), and
    the action runs between their read and the batch (the batch after a batch)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, remembered: bool = False) -> None:
        self.remembered = remembered
        self.unlocked = True
        self.between: Action | None = None
        self.locked_batches = 0
        self.answers: list[bool] = []
        self.seen: tuple[list[bool], int] = ([], 0)  # the unlocked run's, in both_ways
        unless, append_batch = event_batches.append_unless_changed, event_batches.append_batch
        read, write = Writer.read_sessions, Writer.insert_counted_unless_changed

        async def maybe_unlocked(*args: Any) -> Any:
            return await unless(*args) if self.unlocked else None

        async def counted(*args: Any) -> Any:
            self.locked_batches += 1
            return await append_batch(*args)

        async def interposed(writer: Any, session_ids: Any) -> Any:
            found = await read(writer, session_ids)
            if self.between is not None:
                action, self.between = self.between, None
                await action()
            return found

        async def answered(writer: Any, *args: Any) -> bool:
            self.answers.append(await write(writer, *args))
            return self.answers[-1]

        monkeypatch.setattr(events, "append_unless_changed", maybe_unlocked)
        monkeypatch.setattr(events, "append_batch", counted)
        monkeypatch.setattr(Writer, "read_sessions", interposed)
        monkeypatch.setattr(Writer, "insert_counted_unless_changed", answered)

    def path(self, after_its_read: Any, as_remembered: Any) -> Any:
        """The unlocked run's path (`seen`) expected in this mode: as remembered, a refused
        batch is read afresh and may then be written unlocked."""
        return as_remembered if self.remembered else after_its_read

    def reset(self) -> None:
        self.between, self.locked_batches, self.answers = None, 0, []


async def state_of(storage: Any, tenant: Tenant, sessions: list[Session]) -> list[Any]:
    """What the sessions hold, comparable across runs on sessions of different ids."""
    found: list[Any] = []
    for s in sessions:
        stored = await storage.sessions.get(tenant.id, s.id)
        if stored is None:
            found.append(None)
            continue
        stored_events = await storage.events.find(tenant.id, s.id, 1000)
        found.append(
            (
                stored.usage,
                stored.event_count,
                stored.max_sequence_no,
                stored.event_gaps,
                stored.deleted_events,
                stored.status,
                stored.ended_at,
                stored.last_seen_at,
                stored.charge_state,
                stored.charge_revision,
                is_pseudonym(stored.subject_id),
                [(e.sequence_no, e.at, e.label, e.data, e.meters) for e in stored_events],
            )
        )
    return found


def outcome_of(outcome: Any, sessions: list[Session]) -> Any:
    positions = {s.id: n for n, s in enumerate(sessions)}
    return (
        outcome.inserted,
        outcome.duplicates,
        outcome.rejections,
        sorted(positions[i] for i in outcome.repriced),
        outcome.ended_since,
    )


async def both_ways(
    storage: Any,
    tenant: Tenant,
    ways: Ways,
    build: Callable[[], Awaitable[list[Session]]],
    between: Callable[[list[Session]], Action] | None,
    events_of: Callable[[list[Session]], list[Event]],
    admits: Any = None,
) -> tuple[Any, Any]:
    """The batch appended the unlocked way with `between` run after its read, then (on sessions
    built afresh) the locked way alone after `between`: both outcomes and states."""
    results = []
    for unlocked in (True, False):
        ways.unlocked = unlocked
        sessions = await build()
        ways.reset()
        if unlocked and ways.remembered:
            await remember(storage, tenant, sessions)
        elif unlocked:  # remembered since their start: have the batch read them
            storage.events.remembered.forget(tenant.id, [s.id for s in sessions])
        if between is not None:
            if unlocked and not ways.remembered:
                ways.between = between(sessions)
            else:
                await as_another_process(storage, tenant, sessions, between(sessions))
        outcome = await storage.events.append(
            tenant.id, batch(*events_of(sessions)), NOW, OPEN, admits
        )
        assert ways.between is None, "the unlocked read never ran"
        if unlocked:
            ways.seen = (ways.answers, ways.locked_batches)
            if ways.remembered and between is not None:
                # Written as remembered, the batch would undo what `between` did.
                assert ways.answers[:1] == [False], "the batch was not refused as remembered"
        results.append((outcome_of(outcome, sessions), await state_of(storage, tenant, sessions)))
    ways.unlocked = True
    return results[0], results[1]


async def remember(storage: Any, tenant: Tenant, sessions: list[Session]) -> None:
    """Have the storage remember the sessions as they are, as it does those it wrote a batch
    into: the next batch starts from them without reading them."""
    async with asyncpg_connection(storage.driver_engine) as driver:
        read = await asyncpg_sessions.read_many(driver, [(tenant.id, s.id) for s in sessions])
    written = [found for found in read if found is not None]
    storage.events.remembered.keep(tenant.id, written, recalled=False)


async def as_another_process(
    storage: Any, tenant: Tenant, sessions: list[Session], action: Action
) -> None:
    """`action` run as if by another process: what this one remembers of the sessions is as
    before it (a change this process makes forgets them: test_remembered_sessions.py)."""
    ids = [s.id for s in sessions]
    remembered = storage.events.remembered.recall(tenant.id, ids) or {}
    await action()
    storage.events.remembered.keep(tenant.id, remembered.values(), recalled=False)


async def sessions_of_one_id(storage: Any, tenant: Tenant) -> tuple[Tenant, Session, Session]:
    """Another tenant, and a session of each tenant, both of one id."""
    other = Tenant("other-" + tenant.id[:20], "other", tenant.created_at, tenant.settings)
    await storage.tenants.add(other)
    mine = await stored_session(storage, tenant)
    theirs = a_session(other)
    theirs.id = mine.id
    assert await storage.sessions.add(theirs)
    return other, mine, theirs


async def one(storage: Any, tenant: Tenant, **fields: Any) -> list[Session]:
    return [await stored_session(storage, tenant, **fields)]


async def raw(storage_url: str, statement: str, *args: Any) -> None:
    connection = await asyncpg.connect(storage_url)
    try:
        await connection.execute(statement, *args)
    finally:
        await connection.close()


@asynccontextmanager
async def meter_rows_held(storage_url: str, session: Session) -> AsyncIterator[None]:
    """The session's meter rows locked, unchanged, by another transaction until the block ends:
    a batch's write into the session waits for them."""
    holder = await asyncpg.connect(storage_url)
    try:
        await holder.execute("BEGIN")
        await holder.execute(
            "UPDATE session_meters SET quantity_nanos = quantity_nanos"
            " WHERE tenant_id = $1 AND session_id = $2",
            session.tenant_id,
            session.id,
        )
        yield
        await holder.execute("ROLLBACK")
    finally:
        await holder.close()


ADD_METER = (
    "INSERT INTO session_meters (tenant_id, session_id, meter, quantity_nanos, is_decimal)"
    " VALUES ($1, $2, $3, $4, false) ON CONFLICT (tenant_id, session_id, meter)"
    " DO UPDATE SET quantity_nanos = session_meters.quantity_nanos + excluded.quantity_nanos"
)


@pytest.fixture
def ways(storage_url: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Ways:
    on_postgresql(storage_url)
    return Ways(monkeypatch, getattr(request, "param", "after its read") == "as remembered")


# Each action between the batch's read and its write, and between the read that left the
# sessions remembered (a batch before) and the batch.
either_way = pytest.mark.parametrize("ways", ["after its read", "as remembered"], indirect=True)


# Something changes the session between the unlocked read and the guarded write.


@either_way
async def test_an_exit_between_the_read_and_the_write(
    storage: Any, tenant: Tenant, ways: Ways
) -> None:
    """Risk: an exit ends the session after the batch read it active; written as read, the
    event after the end would be taken and the ended session not repriced. Holds: the write
    finds the row changed, the locked way refuses the late one and reprices the session."""

    def close(sessions: list[Session]) -> Action:
        exit_ = Exit(at(1.5), usage={"taps": 5})
        return lambda: storage.sessions.close(tenant.id, sessions[0].id, exit_, RATED, NOW, OPEN)

    unlocked, locked = await both_ways(
        storage,
        tenant,
        ways,
        lambda: one(storage, tenant, kind="counseling", subject_id="ana"),
        close,
        lambda s: [metered(s[0], 1), metered(s[0], 2)],
    )
    assert ways.seen == ([False], 1)
    assert unlocked == locked
    assert unlocked[0][2][0].error == "session_ended" and unlocked[0][3] == [0]


@either_way
async def test_a_charged_exit_between_the_read_and_the_write(
    storage: Any, tenant: Tenant, ways: Ways
) -> None:
    """Risk: the session is closed and its charge settled between the read and the write; the
    late meters must leave it pending again under a new revision. Holds."""
    await storage.rates.put(tenant.id, COUNSELING)
    await storage.ledger.grant(a_grant(tenant, 1000, "g-1", "ana"))

    def close_and_charge(sessions: list[Session]) -> Action:
        async def action() -> None:
            sid = sessions[0].id
            await storage.sessions.close(tenant.id, sid, Exit(at(3)), RATED, NOW, OPEN)
            assert await storage.ledger.settle(tenant.id, sid, 0, 6, at(3)) is not None

        return action

    unlocked, locked = await both_ways(
        storage,
        tenant,
        ways,
        lambda: one(storage, tenant, kind="counseling", subject_id="ana"),
        close_and_charge,
        lambda s: [metered(s[0], 1), metered(s[0], 2)],
    )
    assert unlocked == locked
    *_, charge_state, revision, _, _ = unlocked[1][0]
    assert (unlocked[0][:2], charge_state, revision) == ((2, 0), ChargeState.PENDING, 1)


@either_way
async def test_the_reaper_between_the_read_and_the_write(
    storage: Any, tenant: Tenant, ways: Ways
) -> None:
    """Risk: time_out_idle closes the session (a provisional end at its last sign of life)
    after the batch read it active: the batch must move that end and reprice, not write the
    session back active. Holds."""

    def reap(sessions: list[Session]) -> Action:
        async def action() -> None:
            closed = await storage.sessions.time_out_idle(
                tenant.id, Staleness(default=NOW), 10, RATED, NOW, OPEN
            )
            assert sessions[0].id in {c.id for c in closed}

        return action

    unlocked, locked = await both_ways(
        storage,
        tenant,
        ways,
        lambda: one(storage, tenant, kind="counseling", subject_id="ana"),
        reap,
        lambda s: [metered(s[0], 1), metered(s[0], 2)],
    )
    assert ways.seen == ways.path(([False], 1), as_remembered=([False, True], 0))
    assert unlocked == locked
    assert unlocked[1][0][6] == at(2)  # the provisional end moved to the latest event


@either_way
async def test_an_erasure_between_the_read_and_the_write(
    storage: Any, tenant: Tenant, ways: Ways
) -> None:
    """Risk: the subject is pseudonymised after the read: events written as read would keep
    their label and data after the erasure. Holds: they are stored without either."""

    def erase(sessions: list[Session]) -> Action:
        forgetting = Forgetting(Pseudonyms(), subject_id="ana")
        return lambda: storage.erasure.erase_sessions(tenant.id, [sessions[0].id], forgetting)

    def labelled(s: list[Session]) -> list[Event]:
        return [
            Event(s[0].id, n, "tap", at(n), label="secret", data={"name": "Ana"}) for n in (1, 2)
        ]

    unlocked, locked = await both_ways(
        storage, tenant, ways, lambda: one(storage, tenant, subject_id="ana"), erase, labelled
    )
    assert unlocked == locked
    assert [(e[2], e[3]) for e in unlocked[1][0][-1]] == [(None, None)] * 2


@either_way
async def test_a_heartbeat_between_the_read_and_the_write(
    storage: Any, tenant: Tenant, ways: Ways
) -> None:
    """Risk: the batch writes back last_seen_at as read plus its events, moving back a later
    sign of life stored meanwhile. Holds."""

    def beat(sessions: list[Session]) -> Action:
        return lambda: storage.sessions.heartbeat(tenant.id, sessions[0].id, at(10))

    unlocked, locked = await both_ways(
        storage,
        tenant,
        ways,
        lambda: one(storage, tenant),
        beat,
        lambda s: [metered(s[0], 1), metered(s[0], 2)],
    )
    assert unlocked == locked and unlocked[1][0][7] == at(10)


@either_way
async def test_meters_added_without_the_row_between_the_read_and_the_write(
    storage: Any, storage_url: str, tenant: Tenant, ways: Ways
) -> None:
    """Risk: usage added to the session's meters without writing its row (as
    meters.add_usage does) after the read: the limit judged on the usage read would let the
    total pass 10^9. Holds: the meters' count and sum in the guard tell, and the locked way
    refuses the event."""

    def add(sessions: list[Session]) -> Action:
        return lambda: raw(
            storage_url, ADD_METER, tenant.id, sessions[0].id, "bytes", 300_000_000 * 10**9
        )

    async def build() -> list[Session]:
        sessions = await one(storage, tenant)
        first = batch(metered(sessions[0], 1, bytes=600_000_000))
        await storage.events.append(tenant.id, first, NOW, OPEN)
        return sessions

    unlocked, locked = await both_ways(
        storage,
        tenant,
        ways,
        build,
        add,
        lambda s: [metered(s[0], 2, bytes=200_000_000)],
    )
    assert ways.seen == ([False], 1) and unlocked == locked
    assert unlocked[0][2][0].error.startswith("validation_error: meters.bytes")
    assert unlocked[1][0][0] == {"bytes": 900_000_000}


@either_way
async def test_a_track_counted_between_the_read_and_the_write(
    storage: Any, storage_url: str, tenant: Tenant, ways: Ways
) -> None:
    """Risk: a LiveKit track's seconds and its end event (numbered after the session's highest,
    as SAVE_TRACK does it) land between the read and the write, taking the number the batch
    thought new. Holds: the batch's event of that number is a duplicate, counted nothing."""

    def track(sessions: list[Session]) -> Action:
        async def action() -> None:
            connection = await asyncpg.connect(storage_url)
            try:
                async with connection.transaction():
                    sid = sessions[0].id
                    await connection.execute(
                        "UPDATE sessions SET max_sequence_no = max_sequence_no + 1,"
                        " event_count = event_count + 1 WHERE tenant_id = $1 AND id = $2",
                        tenant.id,
                        sid,
                    )
                    await connection.execute(
                        "INSERT INTO events (tenant_id, session_id, sequence_no, type, at)"
                        " VALUES ($1, $2, 1, 'track_ended', $3)",
                        tenant.id,
                        sid,
                        at(1),
                    )
                    await connection.execute(ADD_METER, tenant.id, sid, "video", 60 * 10**9)
            finally:
                await connection.close()

        return action

    unlocked, locked = await both_ways(
        storage,
        tenant,
        ways,
        lambda: one(storage, tenant),
        track,
        lambda s: [metered(s[0], 1), metered(s[0], 2)],
    )
    assert unlocked == locked
    assert unlocked[0][:2] == (1, 1) and unlocked[1][0][:3] == ({"video": 60, "taps": 1}, 2, 2)


@either_way
async def test_retention_between_the_read_and_the_write(
    storage: Any, tenant: Tenant, ways: Ways
) -> None:
    """Risk: retention deletes the session's old events (remembering their numbers on its row)
    after the read: the batch must not write back deleted_events or the counts as read. Holds."""

    async def build() -> list[Session]:
        sessions = await one(storage, tenant)
        await storage.events.append(tenant.id, batch(metered(sessions[0], 1)), NOW, OPEN)
        return sessions

    def retention(sessions: list[Session]) -> Action:
        return lambda: storage.retention.delete_events(tenant.id, at(1.5), 100)

    unlocked, locked = await both_ways(
        storage,
        tenant,
        ways,
        build,
        retention,
        lambda s: [metered(s[0], 2), metered(s[0], 3)],
    )
    assert unlocked == locked
    assert unlocked[1][0][1:5] == (3, 3, [], [(1, 1)])


@either_way
async def test_a_session_deleted_between_the_read_and_the_write(
    storage: Any, tenant: Tenant, ways: Ways
) -> None:
    """Risk: the session is deleted (erasure's delete_sessions) after the read: events must not
    be stored for a session that no longer exists. Holds: session_not_found, nothing stored."""

    def delete(sessions: list[Session]) -> Action:
        return lambda: storage.erasure.delete_sessions(tenant.id, [sessions[0].id])

    unlocked, locked = await both_ways(
        storage,
        tenant,
        ways,
        lambda: one(storage, tenant),
        delete,
        lambda s: [metered(s[0], 1)],
    )
    assert unlocked == locked and unlocked[0][2][0].error == "session_not_found"
    assert ways.seen == ways.path(([False], 1), as_remembered=([False], 0))
    assert unlocked[1] == [None]


@either_way
async def test_one_session_of_many_changed_leaves_every_session_unwritten(
    storage: Any, tenant: Tenant, ways: Ways
) -> None:
    """Risk: of a batch naming five sessions only the changed one is skipped and the others
    written, then written again the locked way. Holds: the statement writes all or none."""

    async def build() -> list[Session]:
        return [await stored_session(storage, tenant) for _ in range(5)]

    def beat(sessions: list[Session]) -> Action:
        return lambda: storage.sessions.heartbeat(tenant.id, sessions[3].id, at(30))

    unlocked, locked = await both_ways(
        storage,
        tenant,
        ways,
        build,
        beat,
        lambda s: [metered(x, n) for x in s for n in (1, 2)],
    )
    assert unlocked == locked and unlocked[0][:2] == (10, 0)
    assert [x[1] for x in unlocked[1]] == [2] * 5


# Batches the unlocked way takes on its own: the same outcome as the locked way's.


@either_way
async def test_unknown_and_known_sessions_in_one_batch(
    storage: Any, tenant: Tenant, ways: Ways
) -> None:
    """Risk: events of a session that does not exist beside those of one that does: the
    unlocked way must reject the former (at their positions) and write the latter. Holds,
    without the locked way."""

    def events_of(s: list[Session]) -> list[Event]:
        ghost = a_session(tenant)
        return [metered(ghost, 1), metered(s[0], 1), metered(ghost, 2), metered(s[0], 2)]

    unlocked, locked = await both_ways(
        storage, tenant, ways, lambda: one(storage, tenant), None, events_of
    )
    assert unlocked == locked
    assert [r.index for r in unlocked[0][2]] == [0, 2] and unlocked[0][:2] == (2, 0)


@either_way
async def test_a_batch_of_one_event_repeated(storage: Any, tenant: Tenant, ways: Ways) -> None:
    """Risk: a batch that repeats one number (differently each time) is counted more than once
    or stored as a later copy. Holds: the first copy stored, the others duplicates."""

    def events_of(s: list[Session]) -> list[Event]:
        return [metered(s[0], 1, taps=n) for n in (1, 2, 3)]

    unlocked, locked = await both_ways(
        storage, tenant, ways, lambda: one(storage, tenant), None, events_of
    )
    assert unlocked == locked and unlocked[0][:2] == (1, 2)
    assert unlocked[1][0][0] == {"taps": 1}


@either_way
async def test_a_key_that_may_not_write_into_one_session(
    storage: Any, tenant: Tenant, ways: Ways
) -> None:
    """Risk: a key scope's refusals (admits) are not `refused`, so the unlocked way keeps the
    batch: it must still reject them and write the rest. Holds."""

    async def build() -> list[Session]:
        return [
            await stored_session(storage, tenant, resource_id="open"),
            await stored_session(storage, tenant, resource_id="secret"),
        ]

    def admits(session: Session, event: Event) -> str | None:
        return "forbidden: not yours" if session.resource_id == "secret" else None

    unlocked, locked = await both_ways(
        storage,
        tenant,
        ways,
        build,
        None,
        lambda s: [metered(s[1], 1), metered(s[0], 1)],
        admits,
    )
    assert unlocked == locked and unlocked[0][:2] == (1, 0)
    assert unlocked[0][2][0].error == "forbidden: not yours"


@either_way
async def test_late_meters_into_a_charged_session(storage: Any, tenant: Tenant, ways: Ways) -> None:
    """Risk: the unlocked way's repriced sessions and ended_since, worked out on the session as
    read, differ from the locked way's. Holds."""
    await storage.rates.put(tenant.id, COUNSELING)
    await storage.ledger.grant(a_grant(tenant, 1000, "g-1", "ana"))

    async def build() -> list[Session]:
        session = await stored_session(
            storage, tenant, minutes=0.5, kind="counseling", subject_id="ana"
        )
        await storage.sessions.close(tenant.id, session.id, Exit(at(3)), RATED, NOW, OPEN)
        assert await storage.ledger.settle(tenant.id, session.id, 0, 6, at(3)) is not None
        return [session]

    unlocked, locked = await both_ways(
        storage, tenant, ways, build, None, lambda s: [metered(s[0], 1), metered(s[0], 2)]
    )
    assert ways.seen == ([True], 0) and unlocked == locked
    assert unlocked[0][3:] == ([0], at(0.5))


@either_way
async def test_numbers_and_totals_at_their_bounds(storage: Any, tenant: Tenant, ways: Ways) -> None:
    """Risk: the highest sequence number and meters whose nano-units together pass 2**63 (the
    Version's sum, compared as numeric) break the unlocked way or make it fall back. Holds: it
    is written unlocked, with the same outcome and state as the locked way's."""
    near = 999_999_999  # each meter just below the 10^9 limit

    def events_of(s: list[Session]) -> list[Event]:
        meters: Usage = {f"m{k}": Decimal(f"{near}.999999999") for k in range(12)}
        return [Event(s[0].id, MAX_SEQUENCE_NO - 1, "tap", at(1), meters=meters)]

    unlocked, locked = await both_ways(
        storage, tenant, ways, lambda: one(storage, tenant), None, events_of
    )
    assert unlocked == locked and unlocked[0][:2] == (1, 0)
    assert ways.seen == ([True], 0)


async def test_the_highest_number_after_huge_totals_goes_unlocked(
    storage: Any, tenant: Tenant, ways: Ways
) -> None:
    """Risk: after meters totalling more than 2**63 nano-units, the guard's sum never equals
    the Version read, so every later batch falls back (or, worse, passes when it should not).
    Holds: the next batch, numbered 2**63-1, goes unlocked and is counted once."""
    session = await stored_session(storage, tenant)
    meters: Usage = {f"m{k}": Decimal("999999999.999999999") for k in range(12)}
    first = batch(Event(session.id, 1, "tap", at(1), meters=meters))
    assert (await storage.events.append(tenant.id, first, NOW, OPEN)).inserted == 1
    ways.reset()
    last = batch(Event(session.id, MAX_SEQUENCE_NO, "tap", at(2)))
    outcome = await storage.events.append(tenant.id, last, NOW, OPEN)
    assert (outcome.inserted, ways.answers, ways.locked_batches) == (1, [True], 0)
    stored = await storage.sessions.get(tenant.id, session.id)
    assert (stored.event_count, stored.max_sequence_no) == (2, MAX_SEQUENCE_NO)
    assert stored.usage == meters


# Beside the write: other tenants, held rows, cancellation, a crowd.


async def test_another_tenants_session_of_the_same_id_is_neither_waited_for_nor_written(
    storage: Any, storage_url: str, tenant: Tenant, ways: Ways
) -> None:
    """Risk: two tenants' sessions share an id: the guard or the counts join on the id alone,
    so the other tenant's held row makes the batch fall back, or its row is written. Holds."""
    other, mine, theirs = await sessions_of_one_id(storage, tenant)
    async with held(storage_url, [theirs]):
        outcome = await asyncio.wait_for(
            storage.events.append(tenant.id, batch(metered(mine, 1), metered(mine, 2)), NOW, OPEN),
            5,
        )
    assert (outcome.inserted, ways.answers, ways.locked_batches) == (2, [True], 0)
    stored_theirs = await storage.sessions.get(other.id, theirs.id)
    assert (stored_theirs.usage, stored_theirs.event_count) == ({}, 0)
    assert await storage.events.find(other.id, theirs.id, 10) == []
    assert (await storage.sessions.get(tenant.id, mine.id)).usage == {"taps": 2}


async def test_a_request_cancelled_between_the_read_and_the_write_leaves_nothing(
    storage: Any, tenant: Tenant, ways: Ways
) -> None:
    """Risk: the request is cancelled after the unlocked read: anything half-written, or a
    connection left unusable. Holds: nothing stored, and the batch sent again counts once."""
    session = await stored_session(storage, tenant)
    gate = asyncio.Event()

    async def stall() -> None:
        gate.set()
        await asyncio.sleep(30)

    ways.between = stall
    appending = asyncio.ensure_future(
        storage.events.append(tenant.id, batch(metered(session, 1)), NOW, OPEN)
    )
    await asyncio.wait_for(gate.wait(), 5)
    appending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await appending
    stored = await storage.sessions.get(tenant.id, session.id)
    assert (stored.usage, stored.event_count) == ({}, 0)
    for _ in range(3):
        outcome = await storage.events.append(tenant.id, batch(metered(session, 1)), NOW, OPEN)
    assert outcome.duplicates == 1
    stored = await storage.sessions.get(tenant.id, session.id)
    assert (stored.usage, stored.event_count) == ({"taps": 1}, 1)


async def test_a_request_cancelled_while_its_write_waits_is_all_or_nothing(
    storage: Any, storage_url: str, tenant: Tenant, ways: Ways
) -> None:
    """Risk: the request is cancelled while its guarded statement is in the server (here
    waiting for a meter row another transaction holds): events without counts, or a connection
    handed to the next request mid-statement. Holds: all or nothing, and the batch sent again
    (on every pooled connection) counts each event once."""
    session = await stored_session(storage, tenant)
    await storage.events.append(tenant.id, batch(metered(session, 1)), NOW, OPEN)
    async with meter_rows_held(storage_url, session):
        appending = asyncio.ensure_future(
            storage.events.append(tenant.id, batch(metered(session, 2)), NOW, OPEN)
        )
        await asyncio.wait({appending}, timeout=1)
        assert not appending.done()
        appending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await appending
    stored = await storage.sessions.get(tenant.id, session.id)
    numbers = [e.sequence_no for e in await storage.events.find(tenant.id, session.id, 10)]
    assert (stored.usage, stored.event_count, numbers) in (
        ({"taps": 1}, 1, [1]),
        ({"taps": 2}, 2, [1, 2]),
    )
    outcomes = await asyncio.gather(
        *(storage.events.append(tenant.id, batch(metered(session, 2)), NOW, OPEN) for _ in range(6))
    )
    assert sum(o.inserted for o in outcomes) == (1 if numbers == [1] else 0)
    stored = await storage.sessions.get(tenant.id, session.id)
    assert (stored.usage, stored.event_count) == ({"taps": 2}, 2)


async def test_meters_held_by_another_writer_during_the_write_both_count(
    storage: Any, storage_url: str, tenant: Tenant, ways: Ways
) -> None:
    """Risk: a writer adding to a meter (without the session's row) holds it while the
    guarded statement runs: its snapshot sees the meter unchanged, and one of the two additions
    is lost. Holds: the statement waits for the meter row and adds to it as it then is."""
    session = await stored_session(storage, tenant)
    await storage.events.append(tenant.id, batch(metered(session, 1)), NOW, OPEN)
    ways.reset()
    holder = await asyncpg.connect(storage_url)
    try:
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute(ADD_METER, tenant.id, session.id, "taps", 40 * 10**9)
        appending = asyncio.ensure_future(
            storage.events.append(tenant.id, batch(metered(session, 2)), NOW, OPEN)
        )
        await asyncio.wait({appending}, timeout=1)
        assert not appending.done()
        await transaction.commit()
        outcome = await asyncio.wait_for(appending, 10)
    finally:
        await holder.close()
    assert outcome.inserted == 1
    stored = await storage.sessions.get(tenant.id, session.id)
    assert (stored.usage, stored.event_count) == ({"taps": 42}, 2)


async def test_a_crowd_of_batches_exits_and_signs_of_life_keeps_counts_and_events_equal(
    storage: Any, tenant: Tenant, ways: Ways
) -> None:
    """Risk: under many concurrent batches (overlapping numbers, each copy of a number with
    other meters; late numbers below the highest that go the locked way; the unlocked ones),
    signs of life, an exit per session and the reaper, some event is stored without its count,
    or counted twice, or counted with another copy's meters. Holds: every session's usage and
    event_count are exactly those of its stored events (plus the exit's)."""
    sessions = [await stored_session(storage, tenant) for _ in range(4)]

    def window(first: int, taps: int) -> list[tuple[int, Event]]:
        numbers = range(first, first + 4)
        return batch(*(metered(s, n, minutes=1, taps=taps) for s in sessions for n in numbers))

    calls: list[Awaitable[Any]] = [
        storage.events.append(tenant.id, window(first, first), NOW, OPEN)
        for first in range(1, 40, 2)
    ]
    calls += [  # gaps filled late: below the highest by then, so the locked way
        storage.events.append(tenant.id, window(first, 1000 + first), NOW, OPEN)
        for first in range(3, 40, 6)
    ]
    calls += [storage.sessions.sign_of_life(tenant.id, s.id, at(0.5), NOW, OPEN) for s in sessions]
    calls += [
        storage.sessions.close(tenant.id, s.id, Exit(at(2), usage={"taps": 100}), RATED, NOW, OPEN)
        for s in sessions[:2]
    ]
    calls.append(
        storage.sessions.time_out_idle(tenant.id, Staleness(default=NOW), 10, RATED, NOW, OPEN)
    )
    await asyncio.gather(*calls)
    for n, s in enumerate(sessions):
        stored = await storage.sessions.get(tenant.id, s.id)
        found = await storage.events.find(tenant.id, s.id, 1000)
        assert [e.sequence_no for e in found] == list(range(1, 43))
        assert (stored.event_count, stored.max_sequence_no) == (42, 42)
        exit_usage = 100 if n < 2 else 0
        assert stored.usage == {"taps": exit_usage + sum(e.meters["taps"] for e in found)}
    assert ways.locked_batches >= 1


async def test_a_session_started_between_the_read_and_the_write(
    storage: Any, tenant: Tenant, ways: Ways
) -> None:
    """Risk: a batch names a session that does not exist yet and one that does; the missing one
    is started between the read and the write. The unlocked way answers session_not_found for
    its events and writes the others: serializable as the batch before the start (the guard
    holds the other session as read), and the same window the locked way has between its lock
    and its insert (absent rows take no lock). Holds: nothing of the new session's is
    counted, and the known session's events are counted once."""
    known = await stored_session(storage, tenant)
    later = a_session(tenant)

    async def start() -> None:
        assert await storage.sessions.add(later)

    ways.between = start
    outcome = await storage.events.append(
        tenant.id, batch(metered(later, 1), metered(known, 1)), NOW, OPEN
    )
    assert (outcome.inserted, [r.error for r in outcome.rejections]) == (1, ["session_not_found"])
    assert ways.answers == [True] and ways.locked_batches == 0
    started = await storage.sessions.get(tenant.id, later.id)
    assert (started.usage, started.event_count) == ({}, 0)
    assert await storage.events.find(tenant.id, later.id, 10) == []
    assert (await storage.sessions.get(tenant.id, known.id)).usage == {"taps": 1}


async def test_random_batches_answer_as_the_locked_way_does(
    storage: Any, tenant: Tenant, ways: Ways
) -> None:
    """Risk: a batch the unlocked way takes on its own (no race) answers otherwise than the
    locked way: inserted, duplicates, rejections, repriced, ended_since, or what it stores and
    counts. Random batches (fixed seed) over twin worlds of sessions (active, rated, ended
    pending, ended charged, erased, scoped out, unknown), with repeats, late and early numbers,
    meters near the limit, both windows, one world written each way. Holds."""
    await storage.rates.put(tenant.id, COUNSELING)
    await storage.ledger.grant(a_grant(tenant, 10**6, "g-1", "ana"))
    forgetting = Forgetting(Pseudonyms(), subject_id="bob")

    async def world() -> list[Session]:
        active = await stored_session(storage, tenant)
        rated = await stored_session(storage, tenant, kind="counseling", subject_id="ana")
        pending = await stored_session(storage, tenant, kind="counseling", subject_id="ana")
        charged = await stored_session(storage, tenant, kind="counseling", subject_id="ana")
        erased = await stored_session(storage, tenant, subject_id="bob")
        scoped = await stored_session(storage, tenant, resource_id="secret")
        for s in (pending, charged):
            await storage.sessions.close(tenant.id, s.id, Exit(at(3)), RATED, NOW, OPEN)
        assert await storage.ledger.settle(tenant.id, charged.id, 0, 6, at(3)) is not None
        await storage.erasure.erase_sessions(tenant.id, [erased.id], forgetting)
        return [active, rated, pending, charged, erased, scoped, a_session(tenant)]

    def admits(session: Session, event: Event) -> str | None:
        return "forbidden: scope" if session.resource_id == "secret" else None

    chooser = random.Random(66412)
    some_meters: tuple[Usage, ...] = (
        {},
        {"taps": 1},
        {"bytes": 450_000_000},
        {"c": Decimal("0.5")},
    )
    plans = []
    for round_ in range(120):
        events_plan: list[tuple[int, int, float, Usage]] = [
            (
                chooser.randrange(7),
                chooser.randint(1, 8)
                if chooser.random() < 0.1
                else 3 * round_ + chooser.randint(1, 4),
                chooser.choice((0.5, 1, 2, 2.9, 3, 3, 3.5, 6)),
                chooser.choice(some_meters),
            )
            for _ in range(chooser.randint(1, 6))
        ]
        plans.append(
            (events_plan, OPEN if chooser.random() < 0.8 else SHUT, chooser.random() < 0.3)
        )

    worlds = {True: await world(), False: await world()}
    for events_plan, window, scoped in plans:
        answers = {}
        for unlocked, sessions in worlds.items():
            ways.unlocked = unlocked
            chosen = [
                Event(sessions[k].id, n, "tap", at(m), label="l", data={"d": 1}, meters=meters)
                for k, n, m, meters in events_plan
            ]
            outcome = await storage.events.append(
                tenant.id, batch(*chosen), NOW, window, admits if scoped else None
            )
            answers[unlocked] = (
                outcome_of(outcome, sessions),
                await state_of(storage, tenant, sessions[:-1]),
            )
        assert answers[True] == answers[False], events_plan
    ways.unlocked = True
    assert ways.answers.count(True) >= 10, ways.answers  # the unlocked way was taken
