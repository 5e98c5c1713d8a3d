"""Builders of tenants and sessions for the contract suite, at fixed instants around T0."""

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from unittest.mock import patch

import pytest
from dependency_injector import providers

import adapters.mongodb.credits
from adapters.mongodb.documents import Document
from application.credits.ports import ChargeTally
from application.ports import Clock
from application.storage import SettlementCutShort, Storage
from domain.calendar import Bucket, Calendar, Period
from domain.credits import LedgerEntry, MeterRate, Rate
from domain.events import Event
from domain.livekit import LiveKitAccount
from domain.plans import MonthlyQuota, Plan, PlanLimits, Subscription
from domain.sales import Settlement, SettlementState
from domain.session import Exit, Session, SessionRequest
from domain.snapshots import Snapshot
from domain.tenants import ApiKey, Overdraft, Role, Tenant, TenantSettings
from domain.usage import Usage
from entrypoints.container import Container
from tests.contract.races import Proxy

T0 = datetime(2026, 11, 24, 12, 0, 0, 123000, tzinfo=UTC)  # instants are kept to the ms


# For the port methods that ask what time it is: long after every test's data, so nothing is
# capped at now; OPEN lets late data in, SHUT lets no end be corrected.
NOW = T0 + timedelta(days=365)
OPEN = timedelta(days=400)
SHUT = timedelta(0)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def month_of(instant: datetime) -> Bucket:
    """The UTC calendar month that holds the instant."""
    return Calendar().bucket(Period.MONTH, instant)


def quota(limit: int, instant: datetime) -> MonthlyQuota:
    """A quota of `limit` resources in the UTC month of the instant."""
    return MonthlyQuota(limit, month_of(instant))


async def add_tenant(storage: Any, name: str = "acme", **settings: Any) -> Tenant:
    tenant = Tenant(str(uuid.uuid4()), name, T0, TenantSettings(**settings))
    await storage.tenants.add(tenant)
    return tenant


def a_session(tenant: Tenant, minutes: float = 0, **fields: Any) -> Session:
    """A new session of `tenant`, started `minutes` after T0."""
    request = SessionRequest(
        kind=fields.pop("kind", "webinar"),
        resource_id=fields.pop("resource_id", "webinar-1"),
        subject_id=fields.pop("subject_id", "user-1"),
        client_key=fields.pop("client_key", None),
        started_at=at(minutes),
        attributes=fields.pop("attributes", {}),
    )
    assert not fields, f"unknown fields {fields}"
    return Session.start(tenant.id, str(uuid.uuid4()), request, now=at(24 * 60))


async def stored_session(
    storage: Any, tenant: Tenant, minutes: float = 0, **fields: Any
) -> Session:
    session = a_session(tenant, minutes, **fields)
    assert await storage.sessions.add(session)
    return session


def event(session: Session, n: int, **fields: Any) -> Event:
    """The session's event number `n`, dated `n` minutes after T0."""
    return Event(
        session_id=session.id, sequence_no=n, type=fields.pop("type", "tap"), at=at(n), **fields
    )


def batch(*events: Event) -> list[tuple[int, Event]]:
    return list(enumerate(events))


async def a_tenant_with_everything(storage: Any, name: str = "exam-prep") -> Tenant:
    """A tenant with some of every kind of state: keys, rates, plans, a subscription, a
    registration, active/closed/charged sessions with integer and decimal usage, events with a
    gap, grants, charges and an alert."""
    tenant = Tenant(str(uuid.uuid4()), name, T0, TenantSettings(overdraft=Overdraft.SOFT))
    await storage.tenants.add(tenant)
    key, _ = ApiKey.issue(str(uuid.uuid4()), tenant.id, Role.ADMIN, T0)
    await storage.api_keys.add(key)
    await storage.rates.put(
        tenant.id, Rate("practice", 2, meter_rates={"pages.read": MeterRate(Decimal("0.5"), 1)})
    )
    free = PlanLimits(sessions_per_resource=2, session_kinds=frozenset({"practice", "mock"}))
    await storage.plans.put(tenant.id, Plan("free", default=True, limits=free))
    await storage.plans.put(tenant.id, Plan("pass", unlimited=True))
    await storage.subscriptions.put(tenant.id, Subscription("jun", "pass", at(60 * 24 * 30)), T0)
    await storage.resources.register(tenant.id, "ana", "pdf-1", "pdf", at(0), None)
    grant = LedgerEntry.grant(str(uuid.uuid4()), tenant.id, "ana", 5, "welcome", "g-1", T0)
    await storage.ledger.grant(grant)
    usages: list[tuple[str, Usage]] = [
        ("ana", {"pages.read": Decimal("3.25"), "answers": 7}),
        ("ana", {"answers": 1}),
    ]
    for n, (subject, usage) in enumerate(usages):
        session = await stored_session(
            storage, tenant, n * 10, kind="practice", resource_id="pdf-1", subject_id=subject
        )
        batch = [
            (
                i,
                Event(
                    session.id, number, "answer", at(n * 10 + 1), label="b", meters={"answers": 1}
                ),
            )
            for i, number in enumerate((1, 2, 4))
        ]
        await storage.events.append(tenant.id, batch, NOW, OPEN)
        await storage.sessions.close(
            tenant.id,
            session.id,
            Exit(at(n * 10 + 5), usage=usage),
            frozenset({"practice"}),
            NOW,
            SHUT,
        )
        await storage.ledger.settle(tenant.id, session.id, 0, 4, at(n * 10 + 5))
    await storage.livekit_accounts.add(
        LiveKitAccount(f"API{name}", tenant.id, "s" * 40, "https://lk.example.com")
    )
    await storage.snapshots.add(
        tenant.id,
        [Snapshot("lk-1", at(m), 30.5, 41.0, 2048.0, m * 1000, 12, 1) for m in (0, 5)],
    )
    await stored_session(storage, tenant, 30, resource_id="webinar-1", subject_id="jun")
    kiosk = await stored_session(storage, tenant, 31, subject_id=None, client_key="browser-1")
    await _kiosk_telemetry(storage, tenant, kiosk.id)
    return tenant


async def _kiosk_telemetry(storage: Any, tenant: Tenant, session_id: str) -> None:
    """Every kind of telemetry, a settled sale and its refund among it."""
    # Imported here: the telemetry builders build on this module's instants.
    from tests.contract.telemetry_builders import a_full_error, a_metric, a_refund, a_sale

    await storage.errors.add(tenant.id, [a_full_error("crash-1", session_id)])
    await storage.metrics.add(
        tenant.id, [a_metric("capture-1", 812.5, breakdown={"focus": 120.0}, context={"iso": 800})]
    )
    sale = a_sale("sale-1", session_id, attributes={"store": "gangnam", "copies": 2})
    await storage.sales.add(tenant.id, [sale, a_refund("refund-1", sale, "5000")])
    settled = Settlement(SettlementState.SETTLED, at(60 * 24).date(), at(60 * 30), "batch-1")
    await storage.sales.move_settlement(tenant.id, "sale-1", SettlementState.PENDING, settled)


def a_grant(tenant: Tenant, amount: int, key: str, subject: str = "user-1") -> LedgerEntry:
    return LedgerEntry.grant(str(uuid.uuid4()), tenant.id, subject, amount, "top-up", key, T0)


def wired(
    storage: Storage,
    clock: Clock | None = None,
    *,
    tally: ChargeTally | None = None,
    **ports: object,
) -> Container:
    """The container's use cases and jobs on `storage` (the test's, or a racer's own), at
    `clock` if given, telling charges to `tally` if given, with any of its ports replaced
    (`ledger=FailsOnce(...)`). A new container each time: the rate book and the authenticator
    are singletons that keep their first clock."""
    container = Container()
    container.storage.backend.override(providers.Object(storage))
    if clock is not None:
        container.outside.clock.override(providers.Object(clock))
    if tally is not None:
        container.outside.charge_tally.override(providers.Object(tally))
    for name, port in ports.items():
        getattr(container.storage, name).override(providers.Object(port))
    return container


class ChargesApart(Proxy):
    """The storage's sessions, closing without settling the charge in the close (its `charge`
    dropped), as SQLite's and MongoDB's do, and PostgreSQL's when the subject's turn is taken:
    the charge is DeductCredits' second step, which the test fails, pauses or races."""

    async def close(self, *args: Any, charge: Any = None, **kwargs: Any) -> Any:
        return await self._inner.close(*args, **kwargs)


async def claimed_by_a_settlement_that_died(
    storage: Any, tenant_id: str, session_id: str, written: bool = False
) -> None:
    """MongoDB: a settlement of the session (revision 0 at 6 credits, at minute 10) claims it,
    noting on it the entry (and alert) it owes the ledger, and its process dies before writing
    them; or, `written`, after writing them and before clearing its note."""
    finish_due = adapters.mongodb.credits.finish_due

    async def dies(db: Any, session: Document) -> None:
        if written:
            await finish_due(db, session)
            key = {"tenant_id": tenant_id, "id": session_id}
            await db["sessions"].update_one(key, {"$set": {"due": session["due"]}})
        raise ConnectionError("the process died")

    with (
        patch.object(adapters.mongodb.credits, "finish_due", dies),
        pytest.raises(SettlementCutShort),
    ):
        await storage.ledger.settle(tenant_id, session_id, 0, 6, at(10))


def set_at(path: tuple[str, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    """An edit of an export's record: the field at `path` (keys into nested objects) set to
    `value` (a line an import must refuse)."""

    def edit(record: dict[str, Any]) -> None:
        target = record
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return edit
