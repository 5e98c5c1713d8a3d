"""`sessionmeter livekit add --url` and `sessionmeter livekit reconcile`, end to end: stays opened
by signed webhooks in an SQLite file, a LiveKit RoomService on a loopback port
(tests/fake_livekit.py) asked through livekit-api."""

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from click.testing import CliRunner, Result

from application.credits.set_rate import SetRateCommand
from application.livekit.receive_livekit_webhook import ReceiveLiveKitWebhookCommand
from domain.credits import Rate
from domain.livekit import KIND, session_id_of
from domain.session import Session, SessionStatus
from entrypoints.cli.main import cli
from entrypoints.container import Container, build_container
from entrypoints.settings import Settings
from tests.conftest import run_async
from tests.fake_livekit import fake_livekit, unreachable_url
from tests.livekit_server import API_KEY, API_SECRET, LiveKitServer

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/operator.db"
    assert sessionmeter(url, "db", "upgrade").exit_code == 0
    assert sessionmeter(url, "tenants", "create", "acme").exit_code == 0
    return url


def sessionmeter(url: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--storage-url", url, *args])


ADD = ("livekit", "add", "--tenant", "acme", "--api-key", API_KEY, "--api-secret", API_SECRET)


def add(url: str, *options: str) -> Result:
    return sessionmeter(url, *ADD, *options)


def on_storage(url: str, job: Callable[[Container, str], Awaitable[Any]]) -> Any:
    """Run `job(container, acme's id)` against the file, as another process would."""

    async def main() -> Any:
        container = build_container(Settings(storage_url=url))
        try:
            tenant = await container.storage.tenants().get_by_name("acme")
            assert tenant is not None
            return await job(container, tenant.id)
        finally:
            await container.storage.backend().close()

    return run_async(main)


def join(url: str, room: str, identity: str) -> str:
    """A participant_joined webhook delivered as LiveKit signs it; the id of its stay."""
    raw, headers = LiveKitServer(room=room).joined(identity, T0)

    async def deliver(c: Container, _: str) -> None:
        command = ReceiveLiveKitWebhookCommand(raw, headers["Authorization"])
        await c.use_cases.receive_livekit_webhook()(command)

    on_storage(url, deliver)
    return session_id_of(f"RM_{room}", f"PA_{identity}")


def stay(url: str, session_id: str) -> Session:
    found: Session = on_storage(
        url, lambda c, tenant_id: c.storage.sessions().get(tenant_id, session_id)
    )
    return found


def test_add_registers_the_servers_url_keeps_it_with_a_new_secret_and_refuses_a_bad_one(
    url: str,
) -> None:
    added = add(url, "--url", "https://lk.example.com")
    kept = add(url)
    refused = add(url, "--url", "wss://lk.example.com")

    assert added.exit_code == 0 and "server https://lk.example.com" in added.stdout
    assert kept.exit_code == 0
    assert refused.exit_code == 1
    assert refused.stderr == "Error: url: must be an http:// or https:// URL with a host\n"
    account = on_storage(url, lambda c, _: c.storage.livekit_accounts().get(API_KEY))
    assert account.url == "https://lk.example.com"


def test_reconcile_keeps_present_stays_alive_and_ends_the_others_where_last_seen(
    url: str,
) -> None:
    with fake_livekit() as livekit:
        assert add(url, "--url", livekit.url).exit_code == 0
        ana, ben = join(url, "bootcamp", "ana"), join(url, "bootcamp", "ben")
        cy = join(url, "standup", "cy")
        ben_last_seen = T0 + timedelta(minutes=10)
        on_storage(
            url,
            lambda c, tenant_id: c.use_cases.set_rate()(SetRateCommand(tenant_id, Rate(KIND, 1))),
        )
        on_storage(
            url, lambda c, tenant_id: c.storage.sessions().heartbeat(tenant_id, ben, ben_last_seen)
        )
        livekit.join("bootcamp", "PA_ana", "ana")  # ben left (his webhook dropped); standup ended
        before = datetime.now(UTC)
        done = sessionmeter(url, "livekit", "reconcile", "--tenant", "acme")
        again = sessionmeter(url, "livekit", "reconcile")

    assert done.exit_code == 0, done.output
    assert (
        done.stdout
        == "1 stay(s) still in their room, 2 ended (1 tenant(s) with a LiveKit server)\n"
    )
    assert again.exit_code == 0 and ", 0 ended" in again.stdout
    present = stay(url, ana)
    assert present.status is SessionStatus.ACTIVE
    assert present.last_seen_at >= before.replace(microsecond=0)  # instants keep milliseconds
    for gone, last_seen in ((ben, ben_last_seen), (cy, T0)):
        ended = stay(url, gone)
        assert (ended.status, ended.exit_reason) == (SessionStatus.COMPLETED, "reconciled")
        assert ended.ended_at == last_seen
    charge = stay(url, ben).charge
    assert charge is not None and charge.credits == 10
    entries = on_storage(url, lambda c, tenant_id: c.storage.ledger().entries(tenant_id, "ben", 10))
    assert len(entries) == 1  # charged once, however often reconciled


def test_a_server_that_does_not_answer_changes_nothing_and_the_command_exits_1(url: str) -> None:
    down = unreachable_url()
    add(url, "--url", down)
    ana = join(url, "bootcamp", "ana")
    before = stay(url, ana)

    done = sessionmeter(url, "livekit", "reconcile")

    assert done.exit_code == 1
    assert done.stdout.startswith("0 stay(s) still in their room, 0 ended, 1 left as they were")
    assert done.stderr.startswith(
        f"Error: tenant acme: LiveKit server {down}: no answer (ClientConnectorError"
    )
    assert len(done.stderr.splitlines()) == 1
    assert stay(url, ana) == before


def test_serve_hands_the_reconcile_interval_to_its_workers(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # serve writes these for its workers; monkeypatch puts the originals back afterwards.
    monkeypatch.setenv("SESSIONMETER_STORAGE_URL", url)
    monkeypatch.setenv("SESSIONMETER_LIVEKIT_RECONCILE_INTERVAL_SECONDS", "300")
    monkeypatch.setattr(uvicorn, "run", lambda *_, **__: None)

    served = sessionmeter(url, "serve", "--livekit-reconcile-interval", "0")

    assert served.exit_code == 0, served.output
    assert Settings.from_env().livekit_reconcile_interval_seconds == 0  # 0: off
