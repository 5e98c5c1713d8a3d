"""The Litestar application: routes, the container bridge, errors, body limits, background jobs."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from importlib.metadata import version
from typing import Any, cast

from dependency_injector import providers
from litestar import Litestar, Request
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig

from entrypoints.container import Container, build_container
from entrypoints.http.api_reference import RENDER_PLUGINS
from entrypoints.http.background import every, livekit_reconciliation, reaper, retention, rollups
from entrypoints.http.built_use_cases import BuiltUseCases
from entrypoints.http.called_directly import check as check_called_directly
from entrypoints.http.cross_origin import cors
from entrypoints.http.dependencies_in_order import resolve_dependencies_in_order
from entrypoints.http.errors import EXCEPTION_HANDLERS
from entrypoints.http.garbage_collector import tune_for_serving
from entrypoints.http.guards_on_the_handler import guards_on_the_handler
from entrypoints.http.metrics import Metrics
from entrypoints.http.openapi import COMPONENTS, RawItemSchemas
from entrypoints.http.rate_limits import RateLimits
from entrypoints.http.request import StrictJSONRequest
from entrypoints.http.routes import ROUTES
from entrypoints.http.traffic import observed
from entrypoints.lifespan import storage_opened
from entrypoints.settings import Settings


def create_app(container: Container, settings: Settings) -> Litestar:
    resolve_dependencies_in_order()
    guards_on_the_handler()
    app = Litestar(
        route_handlers=ROUTES,
        dependencies={**use_case_dependencies(container), "metrics": current_metrics},
        exception_handlers=EXCEPTION_HANDLERS,
        request_class=StrictJSONRequest,
        plugins=[RawItemSchemas()],
        request_max_body_size=settings.max_body_bytes,
        lifespan=[metrics_of_this_process, background_jobs],
        openapi_config=OpenAPIConfig(
            title="sessionmeter",
            version=version("sessionmeter"),
            path="/schema",
            components=COMPONENTS,
            render_plugins=RENDER_PLUGINS,
        ),
        cors_config=cors(settings),
        # Logging is configured where the process starts (`sessionmeter serve`: its format and
        # level, in every worker), not replaced by Litestar's own when the app is built.
        logging_config=None,
        debug=False,
    )
    # Outermost, around Litestar's exception handling: every answer, a 404 too, is counted,
    # logged and carries its X-Request-ID (entrypoints/http/traffic.py).
    app.asgi_handler = observed(app.asgi_handler)
    check_called_directly(app)
    bind(app, container, settings)
    return app


def bind(app: Litestar, container: Container, settings: Settings) -> None:
    """Point the app at a container. The use cases (BuiltUseCases), the auth guard (guards
    cannot take dependencies) and the background jobs find it in the app's state on each
    request or start, so a test's override applies at once and one app can serve test after
    test, each on a container of its own. Rate limits and metrics count afresh; they live as
    long as the binding (in production, the process)."""
    app.state.container = container
    app.state.use_cases = BuiltUseCases(use_case_providers(container))
    app.state.settings = settings
    app.state.rate_limits = RateLimits()
    app.state.metrics = Metrics()
    # Settlements, wherever they run (a request, a background job), count charges in them.
    container.outside.charge_tally.override(providers.Object(app.state.metrics))


@asynccontextmanager
async def metrics_of_this_process(app: Litestar) -> AsyncIterator[None]:
    """With several workers: a worker that starts forgets the live gauges of workers that died
    (uvicorn replaces a worker that crashed), and its own stop counting when it stops."""
    metrics: Metrics = app.state.metrics
    metrics.forget_dead_processes()
    try:
        yield
    finally:
        metrics.leave()


@asynccontextmanager
async def background_jobs(app: Litestar) -> AsyncIterator[None]:
    container: Container = app.state.container
    settings: Settings = app.state.settings
    metrics: Metrics = app.state.metrics
    schedule = [
        (settings.reaper_interval_seconds, "reaper", reaper(container.jobs.reap_stale_sessions())),
        (
            settings.retention_interval_seconds,
            "retention",
            retention(container.jobs.apply_retention()),
        ),
        (settings.rollup_interval_seconds, "rollups", rollups(container.jobs.roll_up_usage())),
        (
            settings.livekit_reconcile_interval_seconds,
            "livekit_reconcile",
            livekit_reconciliation(container.jobs.reconcile_livekit()),
        ),
    ]
    async with storage_opened(container):
        jobs = [
            asyncio.create_task(every(seconds, name, job, metrics))
            for seconds, name, job in schedule
            if seconds > 0
        ]
        try:
            yield
        finally:
            for job in jobs:
                job.cancel()
                with suppress(asyncio.CancelledError):
                    await job


def app_from_env() -> Litestar:
    """For `uvicorn --factory`: each worker builds its own container from the environment, then
    tunes its collector for the heap it will serve with."""
    settings = Settings.from_env(serving=True)
    app = create_app(build_container(settings), settings)
    tune_for_serving()
    return app


def use_case_providers(container: Container) -> dict[str, providers.Provider[Any]]:
    """Every use case of the container, by name."""
    # dependency-injector's stubs read any attribute of a Container provider as one of its
    # providers, `providers` too; at run time it is the nested container's dict of them.
    use_cases = cast(dict[str, providers.Provider[Any]], container.use_cases.providers)
    return {
        name: provider
        for name, provider in use_cases.items()
        if not isinstance(provider, providers.DependenciesContainer)
    }


def use_case_dependencies(container: Container) -> dict[str, Provide]:
    """Every use case of the container, as a dependency named like its provider: a handler asks
    for `start_session` by parameter name. dependency-injector's own wiring does not work on
    Litestar handlers, so each is bridged with a Provide that asks the bound container's use
    cases (`bind`) on each request."""
    return {name: _bridge(name) for name in use_case_providers(container)}


def _metrics(request: Request[Any, Any, Any]) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


# The `metrics` parameter of handlers that count what their use case did.
current_metrics = Provide(_metrics, sync_to_thread=False)


def _bridge(name: str) -> Provide:
    # The request, not the app's `state`: Litestar makes a State object for each parameter so
    # named, on every request.
    def use_case(request: Request[Any, Any, Any]) -> Any:
        return request.app.state.use_cases.get(name)

    return Provide(use_case, sync_to_thread=False)
