"""The real app, in-process, over one backend: a tenant with ingest and admin keys, and a second
tenant to prove isolation. Used by the HTTP tests and the pytest-bdd steps alike."""

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from litestar import Litestar
from litestar.testing import TestClient

from application.tenants.create_api_key import CreateApiKeyCommand
from application.tenants.create_tenant import CreateTenantCommand
from entrypoints.container import Container, build_container
from entrypoints.http.app import bind, create_app
from entrypoints.settings import Settings

T = TypeVar("T")


@dataclass
class Api:
    client: TestClient[Any]
    container: Container
    app: dict[str, str]  # headers carrying acme's app key: its product's back end
    ingest: dict[str, str]  # acme's ingest key: a browser's or a kiosk's
    admin: dict[str, str]
    other_tenant: dict[str, str]  # globex's app key

    def run(self, make: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run a coroutine on the app's own event loop (database connections belong to it)."""
        return self.client.blocking_portal.call(make, *args)

    def start(self, **body: Any) -> dict[str, Any]:
        body = {"kind": "webinar", "resource_id": "webinar-1", "subject_id": "user-1", **body}
        response = self.client.post("/v1/sessions", json=body, headers=self.app)
        assert response.status_code in (200, 201), response.text
        return dict(response.json())


async def _keys(container: Container) -> tuple[str, str, str, str]:
    create_tenant = container.use_cases.create_tenant()
    create_api_key = container.use_cases.create_api_key()
    for name in ("acme", "globex"):
        # A test client sends faster than the default per-key rate limit; the tests of rate
        # limits set one. (Stored directly: the authenticator is not built before a test
        # overrides its clock.)
        tenant = await create_tenant(CreateTenantCommand(name))
        await container.storage.tenants().change_settings(
            tenant.id, lambda s: replace(s, rate_limit_per_second=None)
        )
    app = await create_api_key(CreateApiKeyCommand("acme", "app"))
    ingest = await create_api_key(CreateApiKeyCommand("acme", "ingest"))
    admin = await create_api_key(CreateApiKeyCommand("acme", "admin"))
    other = await create_api_key(CreateApiKeyCommand("globex", "app"))
    return app.secret, ingest.secret, admin.secret, other.secret


_apps: dict[Settings, Litestar] = {}


def _app(container: Container, settings: Settings) -> Litestar:
    """One app for every test: building one takes Litestar a quarter of a second, and each test
    binds its own container to it (a test that runs the server process gets an app of its
    own)."""
    shared = replace(settings, storage_url="")
    if shared not in _apps:
        _apps[shared] = create_app(container, settings)
    app = _apps[shared]
    bind(app, container, settings)
    return app


def without_jobs(storage_url: str, **settings: Any) -> Settings:
    """Settings with no scheduled job: tests run them when their story says so."""
    return Settings(
        storage_url=storage_url,
        reaper_interval_seconds=0,
        retention_interval_seconds=0,
        rollup_interval_seconds=0,
        livekit_reconcile_interval_seconds=0,
        **settings,
    )


def serve_app(storage_url: str) -> Iterator[Api]:
    settings = without_jobs(storage_url)
    container = build_container(settings)
    with TestClient(_app(container, settings)) as client:
        app, ingest, admin, other = client.blocking_portal.call(_keys, container)
        yield Api(
            client,
            container,
            {"X-API-Key": app},
            {"X-API-Key": ingest},
            {"X-API-Key": admin},
            {"X-API-Key": other},
        )


@contextmanager
def app_of_its_own(**settings: Any) -> Iterator[TestClient[Litestar]]:
    """An app built for settings the shared one cannot take (CORS, a metrics token: read when
    the app is built), on memory and without background jobs."""
    config = without_jobs("memory://", **settings)
    with TestClient(create_app(build_container(config), config)) as client:
        yield client
