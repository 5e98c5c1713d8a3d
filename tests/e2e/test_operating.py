"""Operating the real server: /metrics summed over its workers, the reaper's runs counted, and a
log of JSON lines (one per request, one per job run) that never holds a key or a secret."""

import asyncio
import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector

from tests.e2e.serving import HEALTHY_WITHIN_SECONDS, Server, _children_of, serving
from tests.http.test_trials_api import FREE
from tests.livekit_server import API_SECRET, LiveKitServer
from tests.metrics_samples import Samples, samples_of, value

pytestmark = pytest.mark.slow

STARTS = ("sessionmeter_http_requests_total", "POST", "/v1/sessions", "201")


def scrape(server: Server, **headers: str) -> Samples:
    answer = httpx.get(f"{server.base_url}/metrics", headers=headers)
    assert answer.status_code == 200, answer.text
    return samples_of(answer.text)


def tenant_with_keys(server: Server) -> dict[str, str]:
    server.operator("tenants", "create", "acme")
    return {
        role: server.operator("keys", "create", "--tenant", "acme", "--role", role)
        for role in ("admin", "app", "ingest")
    }


def metrics_dir(server: Server) -> Path:
    """Where the workers write their metrics: the directory `serve` made and handed them."""
    workers = _children_of(server.pid)
    environ = Path(f"/proc/{workers[0]}/environ").read_bytes().split(b"\0")
    named = [v for v in environ if v.startswith(b"PROMETHEUS_MULTIPROC_DIR=")]
    return Path(named[0].split(b"=", 1)[1].decode())


def starts_per_worker(directory: Path) -> dict[str, float]:
    """POST /v1/sessions 201s each worker counted in its own file."""
    counted = {}
    for file in directory.glob("counter_*.db"):
        merged = MultiProcessCollector.merge([str(file)], accumulate=False)  # type: ignore[no-untyped-call]
        counted[file.stem] = sum(
            sample.value
            for metric in merged
            for sample in metric.samples
            if (sample.name, sample.labels.get("method"), sample.labels.get("route")) == STARTS[:3]
            and sample.labels.get("status") == STARTS[3]
        )
    return {worker: n for worker, n in counted.items() if n}


def starts_counted(directory: Path, expected: int) -> dict[str, float]:
    """starts_per_worker once `expected` starts are counted, or after 5 s: a worker counts a
    request once it has answered, so a client can read the answer before it is counted."""
    deadline = time.monotonic() + 5
    while sum((counted := starts_per_worker(directory)).values()) < expected:
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return counted


def test_metrics_sum_every_workers_counts(tmp_path: Path) -> None:
    with serving(tmp_path, "--workers", "2") as server:
        keys = tenant_with_keys(server)
        directory = metrics_dir(server)

        def start(n: int) -> None:
            # A connection each, so that either worker may take it.
            body = {"kind": "webinar", "resource_id": "w-1", "subject_id": f"viewer-{n}"}
            with server.client(keys["app"]) as app:
                answer = app.post("/v1/sessions", json=body)
            assert answer.status_code == 201, answer.text

        sent = 0
        with ThreadPoolExecutor(8) as pool:
            while len(starts_per_worker(directory)) < 2 and sent < 400:
                list(pool.map(start, range(sent, sent + 40)))
                sent += 40
        per_worker = starts_per_worker(directory)
        found = scrape(server)

    assert len(per_worker) == 2, per_worker  # both workers served some
    assert sum(per_worker.values()) == sent
    labels = dict(zip(("method", "route", "status"), STARTS[1:], strict=True))
    assert value(found, STARTS[0], **labels) == sent
    assert value(found, "sessionmeter_sessions_started_total", kind="webinar") == sent
    assert not directory.exists()  # removed when the server stopped


def listening_sockets(pid: int, port: int) -> set[int]:
    """The sockets (inodes) process `pid` listens on at `port` (Linux's /proc)."""
    listening = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], int(fields[9])
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                listening.add(inode)
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except FileNotFoundError:
        return set()  # the process ended meanwhile (a worker the test killed, reaped)
    held = set()
    for fd in fds:
        try:
            link = os.readlink(fd)
        except FileNotFoundError:
            continue  # closed meanwhile
        if link.startswith("socket:["):
            held.add(int(link[len("socket:[") : -1]))
    return listening & held


async def starts_on_new_connections(server: Server, key: str, count: int) -> None:
    """`count` connections opened at once, as a client's pool does, a session started on each."""
    address = urlsplit(server.base_url)
    body = json.dumps({"kind": "webinar", "resource_id": "w-1", "subject_id": "viewer"})
    request = (
        f"POST /v1/sessions HTTP/1.1\r\nHost: {address.netloc}\r\nX-API-Key: {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}"
    )

    async def start() -> None:
        reader, writer = await asyncio.open_connection(address.hostname, address.port)
        writer.write(request.encode())
        assert (await reader.readline()).startswith(b"HTTP/1.1 201")
        writer.close()

    await asyncio.gather(*(start() for _ in range(count)))


def test_connections_opened_at_once_are_spread_over_the_workers(tmp_path: Path) -> None:
    """Each worker listens on a socket of its own, and the kernel spreads connections over
    them: with one socket shared, the worker that woke first to a burst of connections (a
    proxy's pool, a LiveKit server) often took them all while the other idled
    (entrypoints/cli/worker_sockets.py)."""
    with serving(tmp_path, "--workers", "2") as server:
        keys = tenant_with_keys(server)
        directory = metrics_dir(server)
        port = urlsplit(server.base_url).port
        assert port is not None
        listeners = [listening_sockets(pid, port) for pid in _children_of(server.pid)]
        asyncio.run(starts_on_new_connections(server, keys["app"], 40))
        per_worker = starts_counted(directory, 40)

    first, second = [sockets for sockets in listeners if sockets]  # two workers listen
    assert len(first) == len(second) == 1 and first != second
    assert len(per_worker) == 2 and sum(per_worker.values()) == 40, per_worker


def test_a_worker_that_died_is_replaced_by_one_listening_on_a_socket_of_its_own(
    tmp_path: Path,
) -> None:
    """uvicorn replaces a worker that died; the replacement binds a socket of its own too
    (entrypoints/cli/worker_sockets.OwnSocket), and the service answers on it."""
    with serving(tmp_path, "--workers", "2") as server:
        port = urlsplit(server.base_url).port
        assert port is not None

        def listening() -> dict[int, set[int]]:
            by_worker = {pid: listening_sockets(pid, port) for pid in _children_of(server.pid)}
            return {pid: sockets for pid, sockets in by_worker.items() if sockets}

        deadline = time.monotonic() + HEALTHY_WITHIN_SECONDS
        while len(before := listening()) < 2:  # the second worker may still be starting
            assert time.monotonic() < deadline, before
            time.sleep(0.2)
        died = min(before)
        os.kill(died, signal.SIGKILL)
        while len(after := listening()) < 2 or died in after:
            assert time.monotonic() < deadline, after
            time.sleep(0.2)
        answers = [httpx.get(f"{server.base_url}/health").status_code for _ in range(20)]

    [replacement] = set(after) - set(before)
    assert after[replacement] not in before.values()
    assert answers == [200] * 20


def test_the_reapers_runs_and_what_it_closed_are_counted(tmp_path: Path) -> None:
    with serving(tmp_path, "--reaper-interval", "1") as server:
        keys = tenant_with_keys(server)
        with server.client(keys["admin"]) as admin:
            assert admin.put("/v1/settings", json={"idle_timeout_seconds": 10}).status_code == 200
        silent_since = datetime.now(UTC) - timedelta(minutes=1)
        with server.client(keys["app"]) as app:
            stale = app.post(
                "/v1/sessions",
                json={
                    "kind": "kiosk",
                    "resource_id": "booth-1",
                    "subject_id": "guest",
                    "started_at": silent_since.isoformat(),
                },
            ).json()
            deadline = time.monotonic() + 10
            while app.get(f"/v1/sessions/{stale['id']}").json()["status"] == "active":
                assert time.monotonic() < deadline, "the reaper did not close the session"
                time.sleep(0.2)
        # The run that closed it has counted it by the time its next run starts.
        time.sleep(1.5)
        found = scrape(server)

    closed = {"kind": "kiosk", "status": "timed_out", "by": "reaper"}
    assert value(found, "sessionmeter_sessions_closed_total", **closed) == 1
    assert value(found, "sessionmeter_job_runs_total", job="reaper", outcome="ok") >= 2
    assert value(found, "sessionmeter_job_duration_seconds_count", job="reaper") >= 2
    assert value(found, "sessionmeter_sessions_active") == 0


def test_the_log_is_json_lines_without_a_key_or_a_secret(tmp_path: Path) -> None:
    metrics_token = "metrics-token-that-must-not-be-logged"
    bogus_key = "sm_bogus_key_that_must_not_be_logged"
    with serving(
        tmp_path,
        "--log-format",
        "json",
        "--log-level",
        "info",
        reaper_interval_seconds="1",
        rollup_interval_seconds="1",
        retention_interval_seconds="1",
        metrics_token=metrics_token,
    ) as server:
        keys = tenant_with_keys(server)
        server.operator(
            "livekit",
            "add",
            "--tenant",
            "acme",
            "--api-key",
            "APIbootcamp",
            "--api-secret",
            API_SECRET,
        )
        sent = _a_day_of_traffic(server, keys, bogus_key)
        scrape(server, Authorization=f"Bearer {metrics_token}")
        time.sleep(1.5)  # a run of each job
        log = server.log.read_text()

    secrets = [*keys.values(), bogus_key, metrics_token, API_SECRET, *sent]
    assert [s for s in secrets if s in log] == []
    lines = [json.loads(line) for line in log.splitlines()]
    requests = [line for line in lines if "route" in line]
    assert len(requests) >= 10
    assert all(len(line["request_id"]) == 32 for line in requests)
    routes = {(r["method"], r["route"], r["status"]) for r in requests}
    assert {
        ("POST", "/v1/sessions", 201),
        ("POST", "/v1/sessions", 402),
        ("GET", "/v1/sessions", 401),
        ("POST", "/v1/events/batch", 200),
        ("POST", "/v1/webhooks/livekit", 200),
        ("GET", "/metrics", 200),
    } <= routes
    keyed = [r for r in requests if r["route"] == "/v1/sessions" and r["method"] == "POST"]
    assert all(r["tenant_id"] for r in keyed)
    jobs = {line["job"]: line for line in lines if "job" in line}
    assert {"reaper", "rollups", "retention"} <= set(jobs)
    assert isinstance(jobs["reaper"]["sessions_reaped"], int)
    assert isinstance(jobs["rollups"]["hours_rolled_up"], int)
    assert isinstance(jobs["retention"]["events_deleted"], int)
    assert all(isinstance(line["ms"], float) for line in jobs.values())


def _a_day_of_traffic(server: Server, keys: dict[str, str], bogus_key: str) -> list[str]:
    """Sessions, exits, an events batch, a webhook, a 401 and a 402; the webhook's signatures
    (sent in Authorization, like keys: they must not be logged either)."""
    with server.client(keys["admin"]) as admin:
        assert admin.put("/v1/plans/free", json=FREE).status_code == 200
    with server.client(keys["app"]) as app:
        sessions = [_start(app, kind="webinar", subject_id=f"viewer-{n}") for n in range(3)]
        for session in sessions[:2]:
            assert app.post(f"/v1/sessions/{session['id']}/exit").status_code == 200
        _start(app, kind="practice", resource_id="pdf-1", subject_id="mina")
        refused = app.post(
            "/v1/sessions", json={"kind": "practice", "resource_id": "pdf-1", "subject_id": "mina"}
        )
        assert refused.status_code == 402, refused.text
        at = datetime.now(UTC).isoformat()
        events = [
            {"session_id": sessions[2]["id"], "sequence_no": n, "type": "tap", "at": at}
            for n in (1, 2, 3)
        ]
        assert app.post("/v1/events/batch", json={"events": events}).json()["inserted"] == 3
    # A page's beacon may carry its key in the query string.
    httpx.post(f"{server.base_url}/v1/sessions/{sessions[2]['id']}/exit?key={keys['ingest']}")
    with server.client(bogus_key) as bogus:
        assert bogus.get("/v1/sessions").status_code == 401
    livekit = LiveKitServer()
    joined = datetime.now(UTC) - timedelta(minutes=2)
    signatures = []
    for raw, headers in (livekit.joined("alice", joined), livekit.left("alice", joined, joined)):
        delivered = httpx.post(
            f"{server.base_url}/v1/webhooks/livekit", content=raw, headers=headers
        )
        assert delivered.status_code == 200, delivered.text
        signatures.append(headers["Authorization"])
    return signatures


def _start(app: httpx.Client, **body: Any) -> dict[str, Any]:
    started = app.post("/v1/sessions", json={"resource_id": "w-1", **body})
    assert started.status_code == 201, started.text
    return dict(started.json())
