"""`sessionmeter serve`: the HTTP API, with its background jobs."""

import ipaddress
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click
from uvicorn.config import LOG_LEVELS

from entrypoints.cli.options import Decorated
from entrypoints.cli.request_deadline import DEFAULT_TIMEOUT_SECONDS, TIMEOUT_ENV, RequestDeadline
from entrypoints.cli.running import run, settings_of
from entrypoints.cli.whole_responses import WholeResponses
from entrypoints.cli.worker_sockets import run_server
from entrypoints.logs import FORMATS, LogFormat, default_format, logging_config
from entrypoints.settings import (
    CONNECTIONS_ENV,
    DEFAULT_WAIT_SECONDS,
    MIN_CONNECTIONS,
    WAIT_ENV,
    SettingsError,
    origins,
)

# prometheus_client's: where each worker process writes its metrics for /metrics to sum.
METRICS_DIR = "PROMETHEUS_MULTIPROC_DIR"


CORS_ENV = "SESSIONMETER_CORS_ORIGINS"
# uvicorn's levels but `trace`, at which uvicorn logs every request's ASGI scope, query string
# included: the exit's beacon carries its key there (`?key=`), and no key is ever logged.
SAFE_LOG_LEVELS = [level for level in LOG_LEVELS if level != "trace"]


class ServerProtocol(RequestDeadline, WholeResponses):
    """uvicorn's httptools protocol, with a deadline on reading each request and each response
    written whole."""


def interval_option(flag: str, envvar: str, text: str) -> Callable[[Decorated], Decorated]:
    """Seconds between runs of a background job, unset: the server's default."""
    return click.option(
        flag, type=click.FloatRange(min=0), envvar=envvar, show_envvar=True, help=text
    )


def checked_origins(_ctx: click.Context, _param: click.Parameter, listed: str | None) -> str | None:
    """The origins as entrypoints.settings reads them in each worker, every entry checked here."""
    if listed is None:
        return None
    try:
        return ",".join(origins(listed))
    except SettingsError as error:
        raise click.BadParameter(str(error)) from None


def a_host(host: str) -> str:
    """uvicorn takes an empty host for every interface: an address must be given as one."""
    if not host.strip():
        raise click.BadParameter("give an address (0.0.0.0 for every interface)")
    return host


def trusted_proxies(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    """The proxy list as uvicorn takes it, every entry checked: uvicorn itself would take a
    malformed address for a literal that matches nothing, and trust no proxy without a word."""
    entries = [entry.strip() for entry in value.split(",") if entry.strip()]
    if entries == ["*"]:
        return "*"
    for entry in entries:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise click.BadParameter(
                f"{entry!r} is not an IP address or network (e.g. 10.0.0.0/8); use * for any"
            ) from None
    return ",".join(entries)


@click.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    envvar="SESSIONMETER_HOST",
    show_envvar=True,
    callback=lambda _ctx, _param, host: a_host(host),
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8000,
    show_default=True,
    envvar="SESSIONMETER_PORT",
    show_envvar=True,
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    envvar="SESSIONMETER_WORKERS",
    show_envvar=True,
)
@interval_option(
    "--reaper-interval",
    "SESSIONMETER_REAPER_INTERVAL_SECONDS",
    "Seconds between runs of the stale-session reaper (0 turns it off). [default: 30]",
)
@interval_option(
    "--retention-interval",
    "SESSIONMETER_RETENTION_INTERVAL_SECONDS",
    "Seconds between runs of retention (0 turns it off). [default: 3600]",
)
@interval_option(
    "--rollup-interval",
    "SESSIONMETER_ROLLUP_INTERVAL_SECONDS",
    "Seconds between rollup runs (0 turns them off). [default: 300]",
)
@interval_option(
    "--livekit-reconcile-interval",
    "SESSIONMETER_LIVEKIT_RECONCILE_INTERVAL_SECONDS",
    "Seconds between asking LiveKit servers who is in the rooms of open stays (0 turns it "
    "off). [default: 300]",
)
@click.option(
    "--keep-alive",
    type=click.IntRange(min=1),
    default=75,
    show_default=True,
    envvar="SESSIONMETER_KEEP_ALIVE_SECONDS",
    show_envvar=True,
    help="Seconds an idle client connection stays open; longer than a load balancer's idle timeout.",
)
@click.option(
    "--request-timeout",
    type=click.FloatRange(min=0.1),
    default=DEFAULT_TIMEOUT_SECONDS,
    show_default=True,
    envvar=TIMEOUT_ENV,
    show_envvar=True,
    help="Seconds a request may take to arrive whole (headers and body); then 408 and the "
    "connection is closed, so a client that trickles bytes cannot hold it for good.",
)
@click.option(
    "--graceful-shutdown",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    envvar="SESSIONMETER_GRACEFUL_SHUTDOWN_SECONDS",
    show_envvar=True,
    help="Seconds a stop waits for the requests in progress before cancelling them: a client "
    "that trickles its body would otherwise hold the stop up for good. Keep it below your "
    "orchestrator's grace period (30 s on Kubernetes).",
)
@click.option(
    "--forwarded-allow-ips",
    "proxies",
    default="",
    envvar="SESSIONMETER_FORWARDED_ALLOW_IPS",
    show_envvar=True,
    callback=trusted_proxies,
    help="Addresses or networks (CIDR), comma-separated, of the reverse proxies in front: from "
    "them X-Forwarded-For gives the client's address (a session's `ip`); `*` trusts any peer "
    "(only behind a proxy that overwrites the header). Unset: no proxy is trusted.",
)
@click.option(
    "--cors-origins",
    envvar=CORS_ENV,
    show_envvar=True,
    callback=checked_origins,
    help="Origins (scheme://host[:port], comma-separated) whose pages may call the API: the "
    "sites running the tracker (/v1/tracker.js). Unset: no CORS, only pages of the API's own "
    "origin (the dashboard).",
)
@click.option(
    "--postgres-connections",
    type=click.IntRange(min=MIN_CONNECTIONS),
    envvar=CONNECTIONS_ENV,
    show_envvar=True,
    help="PostgreSQL connections each worker keeps at most: two thirds for the hot paths' "
    "statements, the rest for the others; a request waits for one when all are busy. "
    "[default: 30]",
)
@click.option(
    "--storage-wait",
    type=click.FloatRange(min=0, max=3600, min_open=True),
    envvar=WAIT_ENV,
    show_envvar=True,
    help="Seconds a database that does not answer is waited for before a request is answered "
    f"503 with Retry-After. [default: {DEFAULT_WAIT_SECONDS:g}]",
)
@click.option(
    "--log-level",
    type=click.Choice(SAFE_LOG_LEVELS, case_sensitive=False),
    default="info",
    show_default=True,
    envvar="SESSIONMETER_LOG_LEVEL",
    show_envvar=True,
)
@click.option(
    "--log-format",
    type=click.Choice(FORMATS),
    envvar="SESSIONMETER_LOG_FORMAT",
    show_envvar=True,
    help="One JSON object a line, or text for a person. [default: text on a terminal, else json]",
)
@click.pass_context
def serve(
    ctx: click.Context,
    host: str,
    port: int,
    workers: int,
    reaper_interval: float | None,
    retention_interval: float | None,
    rollup_interval: float | None,
    livekit_reconcile_interval: float | None,
    keep_alive: int,
    request_timeout: float,
    graceful_shutdown: int,
    proxies: str,
    cors_origins: str | None,
    postgres_connections: int | None,
    storage_wait: float | None,
    log_level: str,
    log_format: LogFormat | None,
) -> None:
    """Serve the HTTP API (migrating the storage first)."""
    settings = settings_of(ctx)
    if settings.storage_family == "memory" and workers > 1:
        raise click.ClickException("memory:// keeps data per process: serve it with one worker")
    # Waited for as long as the workers will wait: a server started beside its database (one
    # compose file) may come up first, or during an election.
    run(ctx, lambda c: c.storage.backend().migrate(), wait_seconds=None)
    # Workers build their own app from the environment, so configuration travels there.
    os.environ["SESSIONMETER_STORAGE_URL"] = settings.storage_url
    given = {
        "SESSIONMETER_REAPER_INTERVAL_SECONDS": reaper_interval,
        "SESSIONMETER_RETENTION_INTERVAL_SECONDS": retention_interval,
        "SESSIONMETER_ROLLUP_INTERVAL_SECONDS": rollup_interval,
        "SESSIONMETER_LIVEKIT_RECONCILE_INTERVAL_SECONDS": livekit_reconcile_interval,
        CORS_ENV: cors_origins,
        CONNECTIONS_ENV: postgres_connections,
        WAIT_ENV: storage_wait,
    }
    for name, value in given.items():
        if value is not None:
            os.environ[name] = str(value)
    os.environ[TIMEOUT_ENV] = str(request_timeout)
    with metrics_shared(workers):
        run_server(
            factory=True,
            host=host,
            port=port,
            workers=workers,
            http="entrypoints.cli.serve:ServerProtocol",
            timeout_keep_alive=keep_alive,
            timeout_graceful_shutdown=graceful_shutdown,
            # A worker that does not answer uvicorn's ping in time is killed and replaced. Its
            # default, 5 s, killed workers still importing the app on a busy machine, in a loop.
            timeout_worker_healthcheck=30,
            # Uvicorn trusts 127.0.0.1 unless told: a client on the host could forge its address.
            proxy_headers=bool(proxies),
            forwarded_allow_ips=proxies or None,
            log_level=log_level,
            log_config=logging_config(log_format or default_format(), log_level),
            # The app logs each request itself (entrypoints/http/traffic.py), with its route
            # template, tenant and request id, and never the query string (the exit's beacon
            # may carry its key there).
            access_log=False,
        )


@contextmanager
def metrics_shared(workers: int) -> Iterator[None]:
    """With several workers, a directory where each writes its metrics and /metrics reads them
    all: a fresh temporary one, removed when the server stops, unless the environment names one
    (then it is the operator's to empty between runs). It is in the environment before any
    worker starts, as prometheus_client needs. One process keeps its metrics in memory."""
    if named := os.environ.get(METRICS_DIR):
        # Gone since it was named (a /run or /tmp path after a reboot): made, empty, rather than
        # every worker failing to start (and uvicorn replacing them forever).
        try:
            os.makedirs(named, exist_ok=True)
        except OSError as error:
            raise click.ClickException(f"{METRICS_DIR}={named}: {error.strerror}") from None
        yield
        return
    if workers == 1:
        yield
        return
    with tempfile.TemporaryDirectory(prefix="sessionmeter-metrics-") as directory:
        os.environ[METRICS_DIR] = directory
        try:
            yield
        finally:
            del os.environ[METRICS_DIR]
