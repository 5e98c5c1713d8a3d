"""The Prometheus metrics of one server: what the HTTP entry point and the background jobs count
from what the use cases return (the core counts nothing), and their exposition for /metrics.

One `Metrics` per app binding (`entrypoints.http.app.bind`), never module-global: the in-process
tests share one app, and each binding counts from zero on a registry of its own.

With several worker processes (`sessionmeter serve --workers N`) each process writes its values
to files in PROMETHEUS_MULTIPROC_DIR (prometheus_client's multiprocess mode, chosen by that
variable when prometheus_client is first imported; `serve` sets it before any worker starts) and
/metrics, whichever worker answers it, sums the files of every worker, dead ones included, so
counters never go back. Without the variable (one process, the in-process tests) values live in
this object's registry.

Labels never carry a tenant, a subject or a session id. A session's `kind` is text the tenants
choose, so each process keeps at most `MAX_KINDS` distinct kinds as label values and counts any
other kind as `other`: a tenant inventing a kind per session cannot grow the series without bound.
"""

import glob
import os
import re
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
MAX_KINDS = 50
OTHER = "other"
# The path of a request that matched no route (404, 405): never the path itself, which the
# client chooses.
UNMATCHED = "unmatched"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# The files of a process's live gauges are named `gauge_live<mode>_<pid>.db`.
_LIVE_GAUGE_FILE = re.compile(r"gauge_live\w+_(?P<pid>\d+)\.db$")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.multiprocess_dir = os.environ.get(MULTIPROCESS_DIR)
        if self.multiprocess_dir:
            # Values go to the files (registry None: nothing to register per process); the
            # exposition reads every process's files.
            MultiProcessCollector(self.registry, self.multiprocess_dir)  # type: ignore[no-untyped-call]
            registry = None
        else:
            registry = self.registry
        self._kinds: set[str] = set()
        # (method, route, status) → the request counter's and duration histogram's series.
        self._request_series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._requests = Counter(
            "sessionmeter_http_requests",
            "HTTP requests answered, by method, route template and status",
            ["method", "route", "status"],
            registry=registry,
        )
        self._request_seconds = Histogram(
            "sessionmeter_http_request_duration_seconds",
            "Time from a request's arrival to the end of its answer, by route template",
            ["route"],
            registry=registry,
        )
        self._started = Counter(
            "sessionmeter_sessions_started",
            "Sessions started (replays of a start not counted), by kind",
            ["kind"],
            registry=registry,
        )
        self._closed = Counter(
            "sessionmeter_sessions_closed",
            "Sessions closed, by kind, status and who closed them "
            "(client, reaper, webhook, reconcile)",
            ["kind", "status", "by"],
            registry=registry,
        )
        self._events = Counter(
            "sessionmeter_events",
            "Events of ingested batches, by outcome (inserted, duplicate, failed)",
            ["outcome"],
            registry=registry,
        )
        self._refusals = Counter(
            "sessionmeter_refusals",
            "Requests refused for payment (the 402 codes) or rate (rate_limited)",
            ["reason"],
            registry=registry,
        )
        self._charged = Counter(
            "sessionmeter_credits_charged",
            "Credits of sessions' first charges, each counted once (adjustments not counted)",
            registry=registry,
        )
        self._webhooks = Counter(
            "sessionmeter_webhooks",
            "LiveKit webhooks received, by outcome (handled, redelivered, refused, failed)",
            ["outcome"],
            registry=registry,
        )
        self._job_runs = Counter(
            "sessionmeter_job_runs",
            "Background job runs, by job and outcome (ok, partial: some tenants failed, failed)",
            ["job", "outcome"],
            registry=registry,
        )
        self._job_seconds = Histogram(
            "sessionmeter_job_duration_seconds",
            "Time a background job run took, by job",
            ["job"],
            registry=registry,
            buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900),
        )
        # Every worker's reaper counts the same database: the freshest count of a live worker
        # is the truth ("livemostrecent"). "max" would keep an old peak, "sum" count it N times.
        self._active = Gauge(
            "sessionmeter_sessions_active",
            "Sessions active at the latest reaper run (0 before the first)",
            registry=registry,
            multiprocess_mode="livemostrecent",
        )

    def exposition(self) -> bytes:
        """The Prometheus text format of every value (of every worker's, with several)."""
        return generate_latest(self.registry)

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        method = method if method in METHODS else OTHER
        counted = self._request_series.get((method, route, status))
        if counted is None:
            # Prometheus' labels() locks and builds its key on every call: a request's two
            # series are looked up once per (method, route, status), as few as those labels.
            counted = self._request_series[(method, route, status)] = (
                self._requests.labels(method, route, str(status)),
                self._request_seconds.labels(route),
            )
        count, duration = counted
        count.inc()
        duration.observe(seconds)

    def session_started(self, kind: str) -> None:
        self._started.labels(self._kind(kind)).inc()

    def sessions_closed(self, kind: str, status: str, by: str, count: int = 1) -> None:
        self._closed.labels(self._kind(kind), status, by).inc(count)

    def credits_charged(self, credits: int) -> None:
        self._charged.inc(credits)

    def events(self, inserted: int, duplicates: int, failed: int) -> None:
        for outcome, count in (
            ("inserted", inserted),
            ("duplicate", duplicates),
            ("failed", failed),
        ):
            if count:
                self._events.labels(outcome).inc(count)

    def refused(self, reason: str) -> None:
        self._refusals.labels(reason).inc()

    def webhook(self, outcome: str) -> None:
        self._webhooks.labels(outcome).inc()

    def job_run(self, job: str, outcome: str, seconds: float) -> None:
        self._job_runs.labels(job, outcome).inc()
        self._job_seconds.labels(job).observe(seconds)

    def sessions_active(self, count: int) -> None:
        self._active.set(count)

    def _kind(self, kind: str) -> str:
        if kind in self._kinds:
            return kind
        if len(self._kinds) < MAX_KINDS:
            self._kinds.add(kind)
            return kind
        return OTHER

    def forget_dead_processes(self) -> None:
        """Drop the live gauges of workers that died (a worker uvicorn restarted after a crash
        left its files behind): their values would otherwise count as live. Counters and
        histograms of dead workers stay, so that totals never go back."""
        if not self.multiprocess_dir:
            return
        for file in glob.glob(os.path.join(self.multiprocess_dir, "gauge_live*.db")):
            match = _LIVE_GAUGE_FILE.search(Path(file).name)
            if match and not _alive(pid := int(match["pid"])):
                mark_process_dead(pid, self.multiprocess_dir)  # type: ignore[no-untyped-call]

    def leave(self) -> None:
        """This process stops: its live gauges stop counting."""
        if self.multiprocess_dir:
            mark_process_dead(os.getpid(), self.multiprocess_dir)  # type: ignore[no-untyped-call]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True
