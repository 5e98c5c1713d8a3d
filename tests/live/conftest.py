"""One real `sessionmeter serve` per store, its background jobs running every few seconds, with
every live scenario (tests/live/scenarios.py) played against it at the same time, and the three
stores' servers running side by side.

The tenant is set up the way an operator would: the CLI on the same storage URL (while the server
starts: each command is a process that takes seconds to start), then the API. The server is
stopped before the tests look at what the scenarios saw.
"""

import sqlite3
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import ExitStack, closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from tests.conftest import Databases, psql
from tests.e2e.serving import Server, on_storage, operator, serving
from tests.live.scenarios import (
    GRANTS,
    IDLE_TIMEOUT_SECONDS,
    IDLE_TIMEOUTS,
    RATES,
    SCENARIOS,
    TELEMETRY_RETENTION_DAYS,
    Live,
    ok,
)
from tests.livekit_server import API_KEY, API_SECRET, LiveKitServer
from tests.metrics_samples import Samples, samples_of, value

STORES = ["sqlite", "postgresql", "mongodb"]
JOBS = {
    "reaper_interval_seconds": "1",
    "rollup_interval_seconds": "2",
    "retention_interval_seconds": "5",
    "livekit_reconcile_interval_seconds": "5",
}
TENANT = "live"
# Each scenario is bounded on its own; this bounds a stuck server. The scenarios take about 80 s on
# an idle machine and 170 s in CI's slowest hours, beside the rest of the suite.
SCENARIOS_WITHIN_SECONDS = 360


@dataclass(frozen=True)
class LiveRun:
    store: str
    outcomes: dict[str, Future[Any]]
    set_up_seconds: float  # the server's start and the tenant's set-up
    scenarios_seconds: float  # every scenario, at once
    # The credits_charged metric, and the first charges the ledgers hold, read together.
    charges: tuple[float, int]
    strain: str  # how long the server took to answer and to run its jobs meanwhile

    def outcome(self, scenario: str) -> Any:
        """What the scenario saw (its failure re-raised, with what was sent and answered, and
        with how long this run and the server's answers and jobs took: a machine slow for a
        while or a server that stalled)."""
        try:
            return self.outcomes[scenario].result(timeout=0)
        except BaseException as failure:
            failure.add_note(str(self))
            raise

    def __str__(self) -> str:
        return (
            f"live on {self.store}: set-up {self.set_up_seconds:.1f} s, "
            f"scenarios {self.scenarios_seconds:.1f} s; {self.strain}"
        )


@pytest.fixture(scope="module")
def live_runs(databases: Databases, tmp_path_factory: pytest.TempPathFactory) -> dict[str, LiveRun]:
    """Every store's server at the same time: the scenarios mostly wait for the clock (stays,
    the idle timeout, reaper and rollup runs), so three servers take the time of one."""
    with ExitStack() as databases_in_use:
        urls = {store: databases_in_use.enter_context(databases.fresh(store)) for store in STORES}
        folders = {store: tmp_path_factory.mktemp(f"live-{store}") for store in STORES}
        with ThreadPoolExecutor(len(STORES), thread_name_prefix="store") as stores:
            runs = {
                store: stores.submit(live_run, store, url, folders[store])
                for store, url in urls.items()
            }
        return {store: run.result() for store, run in runs.items()}


@pytest.fixture(params=STORES)
def live(request: pytest.FixtureRequest, live_runs: dict[str, LiveRun]) -> LiveRun:
    return live_runs[request.param]


def live_run(store: str, storage_url: str, folder: Path) -> LiveRun:
    """One store's server started, its tenant set up, and every scenario played against it."""
    began = time.monotonic()
    with (
        ThreadPoolExecutor(1, thread_name_prefix="operator") as cli,
        ThreadPoolExecutor(len(SCENARIOS), thread_name_prefix="scenario") as pool,
    ):
        keys = cli.submit(operator_set_up, storage_url)  # while the server starts
        with serving(folder, storage_url=storage_url, **JOBS) as server:
            tenant = configure(server, keys.result())
            set_up = time.monotonic()
            outcomes = {name: pool.submit(play, tenant) for name, play in SCENARIOS.items()}
            # A scenario still running then fails fast: the server stops.
            wait(outcomes.values(), timeout=SCENARIOS_WITHIN_SECONDS)
            played = time.monotonic()
            charges = counted_and_written(server, store, storage_url)
            strain = strain_of(metrics_of(server))
    run = LiveRun(store, outcomes, set_up - began, played - set_up, charges, strain)
    print(run)
    return run


SLOW_SECONDS = "10.0"  # a bucket of both duration histograms


def strain_of(metrics: Samples) -> str:
    """What the server's duration histograms say of the run: per route answered in more than
    SLOW_SECONDS at least once, and per background job, its runs, their mean and the slow ones."""
    over: dict[tuple[str, str], list[float]] = {}  # (histogram, label) -> [count, sum, fast]
    for (name, labels), sample in metrics.items():
        for histogram, label in HISTOGRAMS.items():
            if not name.startswith(histogram):
                continue
            by = dict(labels)
            figures = over.setdefault((histogram, by[label]), [0.0, 0.0, 0.0])
            if name == f"{histogram}_count":
                figures[0] = sample
            elif name == f"{histogram}_sum":
                figures[1] = sample
            elif name == f"{histogram}_bucket" and by["le"] == SLOW_SECONDS:
                figures[2] = sample
    told = []
    for (histogram, label), (count, total, fast) in sorted(over.items()):
        slow = int(count - fast)
        if histogram == JOB_SECONDS:
            told.append(
                f"{label} {int(count)} runs, mean {total / max(count, 1):.1f} s, {slow} slow"
            )
        elif slow:
            told.append(f"{label} {slow} of {int(count)} slow")
    return f"over {SLOW_SECONDS} s: " + "; ".join(told)


JOB_SECONDS = "sessionmeter_job_duration_seconds"
HISTOGRAMS = {"sessionmeter_http_request_duration_seconds": "route", JOB_SECONDS: "job"}


def counted_and_written(server: Server, store: str, storage_url: str) -> tuple[float, int]:
    """`sessionmeter_credits_charged_total` and the credits of the sessions' first charges in
    every ledger of the store, read while the background jobs still run. A charge is written
    before it is counted, so when two reads of the metric around the ledgers' agree, the
    ledgers hold exactly what the metric counted."""
    for _ in range(50):
        counted = credits_counted(server)
        written = first_charges_written(store, storage_url)
        if credits_counted(server) == counted:
            return counted, written
    raise AssertionError("credits were charged through every read of the ledgers")


def credits_counted(server: Server) -> float:
    return value(metrics_of(server), "sessionmeter_credits_charged_total")


def metrics_of(server: Server) -> Samples:
    with server.client() as http:
        return samples_of(http.get("/metrics").text)


FIRST_CHARGES = "SELECT coalesce(-sum(amount), 0) FROM ledger_entries WHERE kind = 'charge'"


def first_charges_written(store: str, storage_url: str) -> int:
    """The credits of every first charge (entries of kind `charge`) in the store, all tenants,
    from the database itself."""
    if store == "sqlite":
        with closing(sqlite3.connect(storage_url.removeprefix("sqlite:///"))) as db:
            return int(db.execute(FIRST_CHARGES).fetchone()[0])
    if store == "postgresql":
        return int(psql(storage_url, FIRST_CHARGES))
    client: MongoClient[dict[str, Any]]
    with MongoClient(storage_url) as client:
        sums: list[dict[str, Any]] = (
            client.get_default_database()["ledger"]
            .aggregate(
                [
                    {"$match": {"kind": "charge"}},
                    {"$group": {"_id": None, "sum": {"$sum": "$amount"}}},
                ]
            )
            .to_list()
        )
        return -sum(int(found["sum"]) for found in sums)


def operator_set_up(storage_url: str) -> str:
    """The tenant, then at once its admin key and its LiveKit account: the CLI's part (each
    command is a process that takes seconds of CPU to start, and three stores start at once)."""
    operator(on_storage(storage_url), "tenants", "create", TENANT)
    livekit = ["livekit", "add", "--tenant", TENANT, "--api-key", API_KEY, "--api-secret"]
    commands = [["keys", "create", "--tenant", TENANT, "--role", "admin"], [*livekit, API_SECRET]]
    with ThreadPoolExecutor(len(commands), thread_name_prefix="operator") as pool:
        admin, _ = pool.map(lambda args: operator(on_storage(storage_url), *args), commands)
    return admin


def configure(server: Server, admin_key: str) -> Live:
    """The ingest and app keys, the settings, rates and credits the scenarios need, through the
    API."""
    with server.client(admin_key) as admin:
        ingest_key, app_key = (
            ok(admin.post("/v1/keys", json={"role": role}), 201)["secret"]
            for role in ("ingest", "app")
        )
    live = Live(server, TENANT, admin_key, ingest_key, app_key, LiveKitServer(API_KEY, API_SECRET))
    with live.admin() as admin:
        settings = ok(
            admin.put(
                "/v1/settings",
                json={
                    "idle_timeout_seconds": IDLE_TIMEOUT_SECONDS,
                    "idle_timeouts": IDLE_TIMEOUTS,
                    # Reports count Seoul's days, and keep stores apart (scenario store_days).
                    "time_zone": "Asia/Seoul",
                    "dimensions": ["store_id"],
                    "error_retention_days": TELEMETRY_RETENTION_DAYS,
                    "performance_retention_days": TELEMETRY_RETENTION_DAYS,
                },
            )
        )
        assert settings["idle_timeout_seconds"] == IDLE_TIMEOUT_SECONDS, settings
        for kind, credits_per_minute in RATES.items():
            ok(admin.put(f"/v1/rates/{kind}", json={"credits_per_minute": credits_per_minute}))
        for subject_id, amount in GRANTS.items():
            grant = {"amount": amount, "reason": "live test", "idempotency_key": subject_id}
            ok(admin.post(f"/v1/accounts/{subject_id}/credits/grants", json=grant), 201)
    return live
