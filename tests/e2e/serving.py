"""`sessionmeter serve` as a process, spoken to over a socket, with its log kept for the test."""

import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import httpx

from application.tenants.create_api_key import CreateApiKeyCommand
from application.tenants.create_tenant import CreateTenantCommand
from entrypoints.container import build_container
from entrypoints.settings import Settings
from tests.conftest import run_async
from tests.servers import free_port

SESSIONMETER = str(Path(sys.executable).parent / "sessionmeter")
# A bound for a server that never comes up: a start takes seconds, but `make test` runs the server
# tests beside the in-process ones (pytest-xdist), and several servers may start at once.
HEALTHY_WITHIN_SECONDS = 90
# httpx loads the CA store for each client not handed a context (19 ms of CPU), and the suite makes
# thousands of clients, of servers that speak plain HTTP: they share one context.
TLS = ssl.create_default_context()


@dataclass(frozen=True)
class Server:
    base_url: str
    env: dict[str, str]
    log: Path  # what the server wrote so far
    pid: int = 0  # the `sessionmeter serve` process's

    def operator(self, *args: str, timeout: float = 60) -> str:
        """Run a CLI command on the server's storage; its last line of standard output."""
        return operator(self.env, *args, timeout=timeout)

    def client(self, key: str | None = None, timeout: float = 30) -> httpx.Client:
        """A client of the server, with the key (if any) on every request."""
        headers = {"X-API-Key": key} if key else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout, verify=TLS)

    def kill(self) -> None:
        """SIGKILL the server and every process it started (uvicorn's workers): it dies mid-write,
        as on a power cut or the OOM killer, with no shutdown of any kind. Each is frozen first
        (SIGSTOP, from the top), so that no worker serves on or is replaced while the others die."""
        frozen: list[int] = []
        alive = [self.pid]
        while alive:
            pid = alive.pop()
            os.kill(pid, signal.SIGSTOP)
            frozen.append(pid)
            alive += _children_of(pid)
        for pid in frozen:
            os.kill(pid, signal.SIGKILL)


def operator(env: dict[str, str], *args: str, timeout: float = 60) -> str:
    """Run a CLI command with this environment (its storage URL); its last line of standard
    output."""
    done = subprocess.run(
        [SESSIONMETER, *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0 and done.stderr == "", (args, done.stderr)
    return done.stdout.splitlines()[-1]


def on_storage(storage_url: str) -> dict[str, str]:
    """The environment of a CLI command on this storage, without a server."""
    return {"SESSIONMETER_STORAGE_URL": storage_url, "PATH": "/usr/bin:/bin"}


@contextmanager
def serving(
    tmp_path: Path, *options: str, storage_url: str | None = None, **settings: str
) -> Iterator[Server]:
    """`sessionmeter serve` until /health answers, then stopped: on `storage_url`, else on an
    empty SQLite file; `settings` are SESSIONMETER_ environment variables without the prefix.
    Its log goes to a file (a pipe nobody reads could fill and stall it) that is printed on the
    way out: pytest shows it when the test failed."""
    if storage_url is None:
        database = tmp_path / "fresh.db"
        database.touch()
        storage_url = f"sqlite:///{database}"
    env = {
        "SESSIONMETER_STORAGE_URL": storage_url,
        "PATH": "/usr/bin:/bin",
        # Its temporary files (the workers' metrics) with the test's: a server the test kills
        # cannot remove them.
        "TMPDIR": str(tmp_path),
        **{f"SESSIONMETER_{name.upper()}": value for name, value in settings.items()},
    }
    server = Server(f"http://127.0.0.1:{(port := free_port())}", env, tmp_path / "server.log")
    with server.log.open("w") as log:
        process = subprocess.Popen(
            [SESSIONMETER, "serve", "--port", str(port), "--log-level", "warning", *options],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = replace(server, pid=process.pid)
    try:
        _wait_until_healthy(process, server.base_url)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        server_log = server.log.read_text()
        print(f"--- sessionmeter serve (exit code {process.returncode}) ---\n{server_log}")
    assert "Traceback" not in server_log, server_log


def deadlines(keep_alive: float, request_timeout: float) -> tuple[str, ...]:
    """`serve`'s options for how long a connection may idle and a request take to arrive."""
    return ("--keep-alive", str(keep_alive), "--request-timeout", str(request_timeout))


def acme_app_key(server: Server) -> str:
    """The tenant `acme` created and an app key of it, as an operator does; the key's secret."""
    server.operator("tenants", "create", "acme")
    return server.operator("keys", "create", "--tenant", "acme", "--role", "app")


@contextmanager
def two_servers(tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    """Two `sessionmeter serve` processes on one SQLite database, each remembering for itself
    what it read (keys, tenants) for a few seconds."""
    database = tmp_path / "shared.db"
    database.touch()
    url = f"sqlite:///{database}"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with (
        serving(tmp_path / "a", storage_url=url) as one,
        serving(tmp_path / "b", storage_url=url) as two,
    ):
        yield one, two


def _wait_until_healthy(process: subprocess.Popen[bytes], base_url: str) -> None:
    deadline = time.monotonic() + HEALTHY_WITHIN_SECONDS
    with httpx.Client(base_url=base_url, verify=TLS) as http:
        while True:
            assert process.poll() is None, "the server exited before it was healthy"
            try:
                if http.get("/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"no 200 from /health in {HEALTHY_WITHIN_SECONDS} s"
            time.sleep(0.1)


def _children_of(pid: int) -> list[int]:
    """The processes whose parent is `pid` (Linux's /proc)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # past "pid (command name)"
        except OSError:
            continue  # gone meanwhile
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def tenant_with_keys(
    storage_url: str, tenant: str, roles: Sequence[str], others: Sequence[str] = ()
) -> dict[str, str]:
    """The tenants `others`, then `tenant` with a key of each role, created on the storage the
    way an operator would before the server starts; the keys' secrets by role."""

    async def create() -> dict[str, str]:
        container = build_container(Settings(storage_url=storage_url))
        try:
            for name in (*others, tenant):
                await container.use_cases.create_tenant()(CreateTenantCommand(name))
            create_api_key = container.use_cases.create_api_key()
            return {
                role: (await create_api_key(CreateApiKeyCommand(tenant, role))).secret
                for role in roles
            }
        finally:
            await container.storage.backend().close()

    return run_async(create)
