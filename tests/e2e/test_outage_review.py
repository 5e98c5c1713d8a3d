"""A hostile review of the outage story on the stores and paths test_database_outage.py does not
cover: MongoDB stopped (and started again on its port with its data) or frozen under a real
server; PostgreSQL frozen under it; a SQLite file made read-only or moved away under it; CLI
commands on a database that is not there or frozen; and kiosks' writes in flight while
PostgreSQL goes away.

A SQLite database locked by another process holds each write up to busy_timeout's 30 s, whatever
the storage wait: that is by choice (adapters/sqlalchemy/engine._serialise_sqlite_writers)."""

import os
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from application.tenants.authenticate import CACHE_TTL
from tests.e2e.outages import JOBS, event, frozen, sent_again, served_once_when_sent_again, start
from tests.e2e.serving import (
    SESSIONMETER,
    Server,
    on_storage,
    operator,
    serving,
    tenant_with_keys,
)
from tests.e2e.test_killed_under_load import KIND, SUBJECTS, rated_tenant
from tests.servers import MongoServer, PostgresServer, free_port

pytestmark = pytest.mark.slow

WAIT = 3.0  # SESSIONMETER_STORAGE_WAIT_SECONDS of the servers below: their 503s come within it
SLACK = 4.0  # what a 503 may take beyond WAIT on a loaded machine
Json = dict[str, Any]


def timed(send: Callable[[], httpx.Response]) -> tuple[float, httpx.Response | str]:
    """How long a request took, and its answer (or why none came)."""
    began = time.monotonic()
    try:
        answer: httpx.Response | str = send()
    except httpx.TransportError as error:
        answer = f"no answer: {type(error).__name__}"
    return time.monotonic() - began, answer


def refused_in_time(taken: float, answer: httpx.Response | str, within: float) -> None:
    assert isinstance(answer, httpx.Response), f"{answer} after {taken:.1f} s"
    assert answer.status_code == 503, f"{answer.status_code} after {taken:.1f} s: {answer.text}"
    assert answer.json()["error"] == "unavailable", answer.text
    assert "Retry-After" in answer.headers, answer.headers
    assert taken < within, f"503 after {taken:.1f} s, not within {within} s"


def refused_while_hung(
    app: httpx.Client, base_url: str, hung: AbstractContextManager[None], within: float
) -> None:
    """A start, a batch, a read and /health sent at once while the store hangs (`hung`: its
    connections stay open and get no answer), each answered 503 within `within`; once it
    answers again, the start and the batch sent again are each served once."""
    s1, s2 = str(uuid.uuid4()), str(uuid.uuid4())
    app.timeout = httpx.Timeout(within + 5)
    assert start(app, s1).status_code == 201
    events = {"events": [event(s1, n) for n in (1, 2, 3)]}
    with hung:
        sends: list[Callable[[], httpx.Response]] = [
            lambda: start(app, s2),
            lambda: app.post("/v1/events/batch", json=events),
            lambda: app.get(f"/v1/sessions/{s1}"),
            lambda: httpx.get(f"{base_url}/health", timeout=within + 5),
        ]
        with ThreadPoolExecutor(len(sends)) as pool:
            answers = list(pool.map(timed, sends))
        time.sleep(2)  # the background jobs meet the hung store meanwhile
    for taken, answer in answers:
        refused_in_time(taken, answer, within)
    # A write given up on may still be done once the store answers (it was on its way): sent
    # again, it is then answered as the one stored. Either way it is stored once.
    assert sent_again(lambda: start(app, s2)).status_code in (200, 201)
    batch = sent_again(lambda: app.post("/v1/events/batch", json=events)).json()
    assert (batch["inserted"] + batch["duplicates"], batch["failed"]) == (3, 0)
    assert app.get(f"/v1/sessions/{s1}").json()["event_count"] == 3
    assert httpx.get(f"{base_url}/health").status_code == 200


@contextmanager
def frozen_mongodb(mongo: MongoServer) -> Iterator[None]:
    mongo.freeze()
    try:
        yield
    finally:
        mongo.thaw()


# 1. MongoDB -----------------------------------------------------------------------------------


@contextmanager
def served_on_mongodb(tmp_path: Path) -> Iterator[tuple[MongoServer, Server, httpx.Client]]:
    """A server with its jobs on, on a migrated MongoDB of its own holding the tenant acme: the
    MongoDB, the server, and an app client."""
    with MongoServer(tmp_path / "mongo-data") as mongo:
        url = mongo.database_url("outage_review")
        operator(on_storage(url), "db", "upgrade")
        key = tenant_with_keys(url, "acme", ["app"])["app"]
        with (
            serving(tmp_path, storage_url=url, storage_wait_seconds=str(WAIT), **JOBS) as server,
            server.client(key) as app,
        ):
            yield mongo, server, app


def test_mongodb_stopped_then_back_on_its_port_with_its_data(tmp_path: Path) -> None:
    s1, s2 = str(uuid.uuid4()), str(uuid.uuid4())
    with served_on_mongodb(tmp_path) as (mongo, server, app):
        assert start(app, s1).status_code == 201
        events = {"events": [event(s1, n) for n in (1, 2, 3)]}
        the_exit = {"at": datetime.now(UTC).isoformat()}

        mongo.halt()
        sends: list[Callable[[], httpx.Response]] = [
            lambda: start(app, s2),
            lambda: app.post("/v1/events/batch", json=events),
            lambda: app.post(f"/v1/sessions/{s1}/exit", json=the_exit),
        ]
        with ThreadPoolExecutor(len(sends)) as pool:
            refused = list(pool.map(timed, sends))
        time.sleep(CACHE_TTL.total_seconds() + 0.5)
        refused.append(timed(lambda: app.get(f"/v1/sessions/{s1}")))
        health = timed(lambda: httpx.get(f"{server.base_url}/health", timeout=30))
        time.sleep(2)  # the jobs fail meanwhile
        mongo.resume()  # the same port, the same data

        for taken, answer in [*refused, health]:
            refused_in_time(taken, answer, WAIT + SLACK)

        served_once_when_sent_again(app, s1, s2, events, the_exit)
        assert httpx.get(f"{server.base_url}/health").status_code == 200


def test_mongodb_that_stops_answering_is_503_within_three_storage_waits(tmp_path: Path) -> None:
    """A server that hangs (frozen, a network partition): the connections the server holds to it
    get no answer; each request is answered 503 once pymongo's next check of it times out and
    a retry finds no server (adapters/mongodb/storage.connect), not after pymongo's own ~33 s."""
    with served_on_mongodb(tmp_path) as (mongo, server, app):
        within = 3 * WAIT + 2 * SLACK  # pymongo's own times gave ~33 s
        refused_while_hung(app, server.base_url, frozen_mongodb(mongo), within)


# 2. SQLite ------------------------------------------------------------------------------------


@contextmanager
def sqlite_served(tmp_path: Path) -> Iterator[tuple[Path, httpx.Client, str]]:
    """A server on a migrated SQLite file with the tenant acme: the file, an app client, and the
    server's base URL."""
    database = tmp_path / "outage.db"
    url = f"sqlite:///{database}"
    operator(on_storage(url), "db", "upgrade")
    key = tenant_with_keys(url, "acme", ["app"])["app"]
    with (
        serving(tmp_path, storage_url=url, storage_wait_seconds=str(WAIT), **JOBS) as server,
        server.client(key) as app,
    ):
        assert start(app, str(uuid.uuid4())).status_code == 201
        yield database, app, server.base_url


def listed_ids(app: httpx.Client) -> list[str]:
    listed = app.get("/v1/sessions", params={"limit": 500})
    assert listed.status_code == 200, listed.text
    return [s["id"] for s in listed.json()["items"]]


def test_sqlite_made_read_only_is_503_at_once_and_served_once_when_writable_again(
    tmp_path: Path,
) -> None:
    ids = [str(uuid.uuid4()) for _ in range(3)]
    with sqlite_served(tmp_path) as (database, app, base_url):
        earlier = str(uuid.uuid4())
        assert start(app, earlier).status_code == 201
        files = [str(database), f"{database}-wal"]
        if subprocess.run(["chattr", "+i", *files], capture_output=True).returncode != 0:
            pytest.skip("no chattr +i here (not root, or a file system without it)")
        try:
            answers = [timed(partial(start, app, i)) for i in ids]
            answers.append(timed(lambda: app.post(f"/v1/sessions/{earlier}/exit", json={})))
        finally:
            subprocess.run(["chattr", "-i", *files], check=True)
        for taken, answer in answers:
            refused_in_time(taken, answer, SLACK)
        for session_id in ids:
            assert sent_again(partial(start, app, session_id)).status_code == 201
            assert start(app, session_id).status_code == 200
        ended = sent_again(lambda: app.post(f"/v1/sessions/{earlier}/exit", json={}))
        assert ended.json()["status"] == "completed", ended.text
        listed = listed_ids(app)
        assert all(listed.count(i) == 1 for i in [*ids, earlier]), listed
        assert httpx.get(f"{base_url}/health").status_code == 200


def moved_away(database: Path) -> Path:
    """The database and its -wal and -shm files moved aside, as an operator restoring a backup
    or a clean-up script would; where they are now."""
    aside = database.parent / "aside"
    aside.mkdir()
    for file in database.parent.glob(f"{database.name}*"):
        file.rename(aside / file.name)
    return aside


def moved_back(aside: Path, database: Path) -> None:
    for file in aside.iterdir():
        os.replace(file, database.parent / file.name)


def test_sqlite_database_moved_away_is_503_and_served_again_once_back(tmp_path: Path) -> None:
    """Found by the review: the server made an empty database where the file had been, kept
    its connections on it for good (every request 503, `no such table`, once the file was back)
    and answered /health 200 throughout. A connection opened before the move may still serve a
    request from the file where it went (SQLite's WAL), which comes back with it."""
    ids = [str(uuid.uuid4()) for _ in range(3)]
    with sqlite_served(tmp_path) as (database, app, base_url):
        aside = moved_away(database)
        for session_id in ids * 3:  # a kiosk's writes meanwhile
            taken, answer = timed(partial(start, app, session_id))
            if getattr(answer, "status_code", None) not in (200, 201):
                refused_in_time(taken, answer, SLACK)
        refused_in_time(*timed(lambda: httpx.get(f"{base_url}/health", timeout=30)), SLACK)
        time.sleep(3)  # the background jobs run meanwhile (every second)
        assert not database.exists(), "the server made a database where the file had been"
        moved_back(aside, database)
        for session_id in ids:
            assert sent_again(partial(start, app, session_id)).status_code in (200, 201)
        listed = listed_ids(app)
        assert all(listed.count(i) == 1 for i in ids), listed
        assert httpx.get(f"{base_url}/health").status_code == 200


# 3. The CLI -----------------------------------------------------------------------------------

COMMAND_WAIT = 5.0  # entrypoints.cli.running.COMMAND_WAIT_SECONDS
COMMAND_SLACK = 7.0  # a command's own start (imports) on a loaded machine


def command_on(url: str, *args: str) -> tuple[float, subprocess.CompletedProcess[str] | str]:
    began = time.monotonic()
    try:
        done: subprocess.CompletedProcess[str] | str = subprocess.run(
            [SESSIONMETER, *args],
            env=on_storage(url),
            capture_output=True,
            text=True,
            timeout=COMMAND_WAIT + COMMAND_SLACK + 10,
        )
    except subprocess.TimeoutExpired:
        done = "still running"
    return time.monotonic() - began, done


def failed_in_one_line(taken: float, done: subprocess.CompletedProcess[str] | str) -> None:
    assert not isinstance(done, str), f"{done} after {taken:.1f} s"
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    assert done.stderr.startswith("Error: storage error: "), done.stderr
    assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr, done.stderr
    assert taken < COMMAND_WAIT + COMMAND_SLACK, f"{taken:.1f} s: {done.stderr}"


def test_a_command_on_a_mongodb_that_is_not_there_is_one_line_within_its_wait() -> None:
    failed_in_one_line(*command_on(f"mongodb://127.0.0.1:{free_port()}/x", "db", "upgrade"))


def test_a_command_on_a_frozen_postgresql_is_one_line_within_its_wait() -> None:
    with PostgresServer(of_its_own=True) as postgres:
        operator(on_storage(postgres.url), "db", "upgrade")
        with frozen(postgres):
            outcome = command_on(postgres.url, "tenants", "create", "acme")
        failed_in_one_line(*outcome)


# 4. A kiosk's writes in flight while PostgreSQL goes away --------------------------------------

KIOSKS = 4
VISITS = 4  # per kiosk: a start, a batch of events and an exit each
SUBJECT_GRANT = 1000


def kiosk(app: httpx.Client, number: int, going: threading.Event) -> list[str]:
    """A kiosk's visits, each write sent again after each 503 until served, with its ids: the
    sessions it started."""
    sessions = []
    for visit in range(VISITS):
        if visit == 1:
            going.wait(10)  # the later visits while the database goes away and comes back
        session_id = str(uuid.uuid4())
        body = {
            "id": session_id,
            "kind": KIND,
            "resource_id": f"kiosk-{number}",
            "subject_id": SUBJECTS[(number + visit) % len(SUBJECTS)],
            "started_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
        }
        started = sent_again(partial(app.post, "/v1/sessions", json=body))
        assert started.status_code in (200, 201), started.text
        events = {"events": [event(session_id, n) for n in (1, 2, 3)]}
        batch = sent_again(partial(app.post, "/v1/events/batch", json=events))
        assert batch.status_code == 200 and batch.json()["failed"] == 0, batch.text
        the_exit = {"at": datetime.now(UTC).isoformat()}
        ended = sent_again(partial(app.post, f"/v1/sessions/{session_id}/exit", json=the_exit))
        assert ended.status_code == 200, ended.text
        sessions.append(session_id)
    return sessions


def test_a_kiosks_writes_in_flight_while_postgresql_goes_away_are_stored_and_charged_once(
    tmp_path: Path,
) -> None:
    with PostgresServer(of_its_own=True) as postgres:
        operator(on_storage(postgres.url), "db", "upgrade")
        keys = rated_tenant(postgres.url)
        with serving(tmp_path, storage_url=postgres.url, **JOBS) as server:
            with server.client(keys["admin"]) as admin:
                for subject in SUBJECTS:
                    grant = {"amount": SUBJECT_GRANT, "reason": "r", "idempotency_key": subject}
                    granted = admin.post(f"/v1/accounts/{subject}/credits/grants", json=grant)
                    assert granted.status_code == 201, granted.text
            going = threading.Event()
            clients = [server.client(keys["app"]) for _ in range(KIOSKS)]
            try:
                with ThreadPoolExecutor(KIOSKS) as pool:
                    loads = [
                        pool.submit(kiosk, client, n, going) for n, client in enumerate(clients)
                    ]
                    time.sleep(0.5)
                    going.set()
                    time.sleep(0.05)
                    postgres.halt()
                    time.sleep(3)
                    postgres.resume()
                    started = [s for load in loads for s in load.result()]
            finally:
                for client in clients:
                    client.close()

            with server.client(keys["admin"]) as admin:
                sessions = admin.get("/v1/sessions", params={"limit": 500}).json()["items"]
                assert sorted(s["id"] for s in sessions) == sorted(started)
                for session in sessions:
                    assert session["status"] == "completed", session
                    assert session["event_count"] == 3, session
                settled_by = time.monotonic() + 15  # a charge left pending is the reaper's
                while any(
                    s["charge_state"] == "pending"
                    for s in admin.get("/v1/sessions", params={"limit": 500}).json()["items"]
                ):
                    assert time.monotonic() < settled_by, "charges still pending"
                    time.sleep(0.5)
                sessions = admin.get("/v1/sessions", params={"limit": 500}).json()["items"]
                entries = []
                for subject in SUBJECTS:
                    ledger = admin.get(
                        f"/v1/accounts/{subject}/credits/ledger", params={"limit": 500}
                    ).json()["items"]
                    balance = admin.get(f"/v1/accounts/{subject}/credits").json()["balance"]
                    assert balance == sum(e["amount"] for e in ledger), (subject, ledger)
                    entries += ledger
                charges = [e["session_id"] for e in entries if e["kind"] == "charge"]
                assert sorted(charges) == sorted(started), entries  # each exit charged once
                for session in sessions:
                    assert session["charge_state"] == "charged", session
                    paid = [e["amount"] for e in entries if e["session_id"] == session["id"]]
                    assert -sum(paid) == session["charge"]["credits"], (session, paid)
            # The outage met writes in flight: some were answered 503 and sent again.
            assert server.log.read_text().count(": the storage failed: ") >= 1
