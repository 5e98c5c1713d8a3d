"""What a webhook reads of its signer's account and of its tenant is remembered briefly per
process (LiveKitAccountBook, TenantBook), without keeping out what changed: a key registered or
a secret replaced elsewhere counts at its first webhook, a change made through this process at
once, and an old secret stops working within the memory's lifetime."""

from datetime import timedelta

import pytest

from adapters.memory.storage import MemoryStorage
from application.livekit.receive_livekit_webhook import (
    ReceiveLiveKitWebhook,
    ReceiveLiveKitWebhookCommand,
)
from application.remembered import TTL
from application.tenants.update_settings import UpdateSettingsCommand
from domain.errors import Unauthorized
from domain.livekit import LiveKitAccount, session_id_of
from domain.staleness import Staleness
from domain.tenants import Tenant
from entrypoints.container.use_cases import UseCaseContainer
from tests.fakes import FakeClock
from tests.livekit_server import API_KEY, LiveKitServer

pytestmark = pytest.mark.anyio

OLD, NEW = "an-old-secret-of-at-least-thirty-two-chars", "a-new-secret-of-at-least-thirty-two-chars"
STAY = session_id_of("RM_bootcamp", "PA_ana")


async def joined(receive: ReceiveLiveKitWebhook, server: LiveKitServer, clock: FakeClock) -> str:
    body, headers = server.joined("ana", clock.now())
    received = await receive(ReceiveLiveKitWebhookCommand(body, headers["Authorization"]))
    return received.tenant_id


async def registered_elsewhere(storage: MemoryStorage, tenant: Tenant, secret: str) -> None:
    """As the CLI of another process registers a key: past this process's memory."""
    await storage.livekit_accounts.add(LiveKitAccount(API_KEY, tenant.id, secret))


async def remembered_with_old_secret(
    receive: ReceiveLiveKitWebhook, storage: MemoryStorage, tenant: Tenant, clock: FakeClock
) -> None:
    """The key registered elsewhere with OLD, and remembered here by a webhook it signed."""
    await registered_elsewhere(storage, tenant, OLD)
    assert await joined(receive, LiveKitServer(secret=OLD), clock) == tenant.id


async def test_a_key_registered_elsewhere_after_a_refusal_counts_at_its_next_webhook(
    receive: ReceiveLiveKitWebhook, storage: MemoryStorage, tenant: Tenant, clock: FakeClock
) -> None:
    with pytest.raises(Unauthorized):
        await joined(receive, LiveKitServer(secret=OLD), clock)

    await registered_elsewhere(storage, tenant, OLD)

    assert await joined(receive, LiveKitServer(secret=OLD), clock) == tenant.id


async def test_a_secret_replaced_elsewhere_counts_at_its_first_webhook(
    receive: ReceiveLiveKitWebhook, storage: MemoryStorage, tenant: Tenant, clock: FakeClock
) -> None:
    await remembered_with_old_secret(receive, storage, tenant, clock)

    await registered_elsewhere(storage, tenant, NEW)

    assert await joined(receive, LiveKitServer(secret=NEW), clock) == tenant.id


async def test_a_secret_replaced_elsewhere_still_works_here_for_the_ttl_at_most(
    receive: ReceiveLiveKitWebhook, storage: MemoryStorage, tenant: Tenant, clock: FakeClock
) -> None:
    await remembered_with_old_secret(receive, storage, tenant, clock)

    await registered_elsewhere(storage, tenant, NEW)

    assert await joined(receive, LiveKitServer(secret=OLD), clock) == tenant.id
    clock.advance(TTL.total_seconds())
    with pytest.raises(Unauthorized):
        await joined(receive, LiveKitServer(secret=OLD), clock)


async def test_a_secret_replaced_through_this_process_ends_the_old_one_at_once(
    receive: ReceiveLiveKitWebhook,
    use_cases: UseCaseContainer,
    storage: MemoryStorage,
    tenant: Tenant,
    clock: FakeClock,
) -> None:
    await remembered_with_old_secret(receive, storage, tenant, clock)

    await use_cases.livekit_account_book().add(LiveKitAccount(API_KEY, tenant.id, NEW))

    with pytest.raises(Unauthorized):
        await joined(receive, LiveKitServer(secret=OLD), clock)


async def test_settings_changed_through_this_process_apply_to_the_next_webhook(
    receive: ReceiveLiveKitWebhook,
    use_cases: UseCaseContainer,
    storage: MemoryStorage,
    tenant: Tenant,
    clock: FakeClock,
) -> None:
    server = LiveKitServer(secret=OLD)
    await registered_elsewhere(storage, tenant, OLD)
    joined_at = clock.now() - timedelta(hours=3)
    body, headers = server.joined("ana", joined_at)
    await receive(ReceiveLiveKitWebhookCommand(body, headers["Authorization"]))  # remembered
    # The reaper's end is a guess that a later sign of life moves, unless that one is late.
    await storage.sessions.time_out_idle(
        tenant.id, Staleness(clock.now()), 1, frozenset(), clock.now(), timedelta(days=7)
    )

    changes = {"late_data_window_seconds": 3600}
    await use_cases.update_settings()(UpdateSettingsCommand(tenant, changes))
    at = joined_at + timedelta(minutes=1)  # late under the new window, not under the old one
    body, headers = server.track("track_published", "ana", joined_at, "TR_1", "CAMERA", at)
    await receive(ReceiveLiveKitWebhookCommand(body, headers["Authorization"]))

    stay = await storage.sessions.get(tenant.id, STAY)
    assert stay is not None and (stay.last_seen_at, stay.ended_at) == (joined_at, joined_at)
