"""Concurrent requests' statements of one kind sent to PostgreSQL together, as one statement.

Under load a server has many requests waiting on the same statement at once (32 clients each
starting and ending sessions). Sent one by one, each statement is a round trip: a send and a
wake-up of a backend for the server, a parse, plan, execution and answer for PostgreSQL, which
cost more than the row itself. Sent as one statement over arrays (`unnest`), they cost
PostgreSQL about a third, and the server about half (benchmarks/HISTORY.md).

No request waits for a group to fill. A request's statement goes at once if fewer than
`SENDERS` of its kind are on their way; otherwise it joins those waiting, and the next sender
takes them all. A lone request is sent alone (`one`).

Each statement is atomic on its own, and so is a group's: every member's row is written or
none is. A group refused with its connection still usable (one member's row refused by the
database, or one of its values that cannot be sent) is sent again member by member, so that
each gets its own answer; one that fails for want of an answer (the statement given up, the
connection broken) fails each of its members, as their own statements would have. Two members
of one key (two requests for one session) never share a group: one statement would answer both
as if each alone had written. And no member may hold up the others: a group's statement is all
it sends (what is a member's alone, finding a session's gaps, goes apart), and one that would
wait for a row another writer holds skips it instead (grouped_sessions).
"""

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sqlalchemy.asyncpg_statements import Driver, asyncpg_connection
from adapters.sqlalchemy.engine import given_up

Member = TypeVar("Member")
Answer = TypeVar("Answer")
Outcome = TypeVar("Outcome")

# Statements of one kind on their way at once, each on a connection of its own. Two: while one
# group is sent the next gathers, and a group waiting on the database does not hold up the rest.
SENDERS = 2


@dataclass
class _Waiting(Generic[Member, Answer]):
    member: Member
    answer: "asyncio.Future[Answer]"


@dataclass
class StatementGroup(Generic[Member, Answer]):
    """Members' statements of one kind: `one` sends a member's alone, `many` several members'
    as one statement, answering each in their order; `key` tells members that must not share a
    group."""

    engine: AsyncEngine
    one: Callable[[Driver, Member], Awaitable[Answer]]
    many: Callable[[Driver, Sequence[Member]], Awaitable[Sequence[Answer]]]
    key: Callable[[Member], Hashable]
    _waiting: list[_Waiting[Member, Answer]] = field(default_factory=list)
    _senders: set["asyncio.Task[None]"] = field(default_factory=set)
    _loop: asyncio.AbstractEventLoop | None = None

    async def __call__(self, member: Member) -> Answer:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            # Another event loop (a test client's each): what the last one left can never end.
            self._loop, self._waiting, self._senders = loop, [], set()
        answer: asyncio.Future[Answer] = loop.create_future()
        waiting = _Waiting(member, answer)
        self._waiting.append(waiting)
        if len(self._senders) < SENDERS:
            # A task of its own, kept here: the loop keeps only a weak reference to a task. In
            # a context of its own: it answers many requests, so it must not carry this one's
            # (the request id its log lines would name). It leaves `_senders` itself (`_send`),
            # or when done if cancelled before it ran.
            sender = asyncio.create_task(self._send(), context=contextvars.Context())
            self._senders.add(sender)
            sender.add_done_callback(self._senders.discard)
        return await answer

    async def _send(self) -> None:
        senders = self._senders
        group = self._next_group()
        try:
            while group:
                # A connection a group, given back between groups: the pool's other users (the
                # other kinds, the batches) take their turns, even when its size is one.
                try:
                    async with asyncpg_connection(self.engine) as driver:
                        await self._answer(driver, group)
                except Exception as error:  # no answer on that connection, as alone
                    for waiting in group:
                        self._settle(waiting, error)
                group = self._next_group()
        except BaseException:  # cancelled (the server stops): so are those waiting
            for waiting in (*group, *self._waiting):
                waiting.answer.cancel()
            self._waiting = []
            raise
        finally:
            # In the step that found no one waiting, not in a done callback: a callback runs a
            # step later, and a request arriving meanwhile would count this sender as on its
            # way and wait for it forever.
            senders.discard(asyncio.current_task())

    def _next_group(self) -> list[_Waiting[Member, Answer]]:
        """Those waiting, but a second member of a key: it waits for the next group."""
        group: list[_Waiting[Member, Answer]] = []
        later: list[_Waiting[Member, Answer]] = []
        keys: set[Hashable] = set()
        for waiting in self._waiting:
            if waiting.answer.done():  # its request was cancelled
                continue
            key = self.key(waiting.member)
            (later if key in keys else group).append(waiting)
            keys.add(key)
        self._waiting = later
        return group

    async def _answer(self, driver: Driver, group: list[_Waiting[Member, Answer]]) -> None:
        """Answer the group on `driver`; raises (its members unanswered) when the connection
        gave no answer."""
        if len(group) > 1:
            outcome = await _answered(self.many(driver, [w.member for w in group]), driver)
            if not isinstance(outcome, Exception):
                for waiting, answer in zip(group, outcome, strict=True):
                    self._settle(waiting, answer)
                return
        for waiting in group:  # alone, or refused together: each its own answer, its own error
            self._settle(waiting, await _answered(self.one(driver, waiting.member), driver))

    @staticmethod
    def _settle(waiting: _Waiting[Member, Answer], outcome: Answer | Exception) -> None:
        if waiting.answer.done():  # its request was cancelled
            return
        if isinstance(outcome, Exception):
            waiting.answer.set_exception(outcome)
        else:
            waiting.answer.set_result(outcome)


async def _answered(statement: Awaitable[Outcome], driver: Driver) -> Outcome | Exception:
    """The statement's outcome, or the error that refused it with the connection still usable
    (the database's, or one of a member's values that cannot be sent); an error that leaves no
    usable connection (the statement given up, the connection broken) is raised."""
    try:
        return await statement
    except Exception as error:
        if driver.is_closed() or given_up(error):
            raise
        return error
