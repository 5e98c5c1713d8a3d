"""Every route: the /v1 API, which API keys open, and the doors that take no key: health,
LiveKit's webhooks (signed), the metrics (their own token, if set), the tracker script, the
dashboard and the files it loads."""

from litestar import Router
from litestar.types import ControllerRouterHandler

from domain.tenants import Role
from entrypoints.http.auth import admitted, current_principal, needs
from entrypoints.http.controllers.credits import CreditsController
from entrypoints.http.controllers.dashboard import dashboard, vendored
from entrypoints.http.controllers.data_rights import DataRightsController
from entrypoints.http.controllers.errors import ErrorsController
from entrypoints.http.controllers.events import EventsController
from entrypoints.http.controllers.funnels import FunnelsController
from entrypoints.http.controllers.health import health
from entrypoints.http.controllers.keys import KeysController
from entrypoints.http.controllers.livekit import LiveKitController, livekit_webhook
from entrypoints.http.controllers.metrics import metrics
from entrypoints.http.controllers.performance import PerformanceController
from entrypoints.http.controllers.reports import ReportsController
from entrypoints.http.controllers.sales import SalesController
from entrypoints.http.controllers.sessions import SessionsController
from entrypoints.http.controllers.snapshots import SnapshotsController
from entrypoints.http.controllers.tenants import SettingsController
from entrypoints.http.controllers.tracker import tracker
from entrypoints.http.controllers.trials import TrialsController
from entrypoints.http.openapi import KEYED, declare_responses

v1 = Router(
    path="/v1",
    route_handlers=[
        SessionsController,
        EventsController,
        SnapshotsController,
        ErrorsController,
        PerformanceController,
        SalesController,
        CreditsController,
        TrialsController,
        ReportsController,
        FunnelsController,
        LiveKitController,
        SettingsController,
        KeysController,
        DataRightsController,
    ],
    guards=[admitted],
    security=KEYED,
    dependencies={"caller": current_principal},
    # Each controller says the role it needs; one that forgets needs the most.
    opt=needs(Role.ADMIN),
)

# Each route declares what only it answers; what the guard, bodies and parameters answer, and
# the 200 of a replay, are declared for all of them at once.
declare_responses([v1, health, livekit_webhook, metrics])
# Outside /v1's key guard: pages (the dashboard asks for a key itself) and the tracker script.
ROUTES: list[ControllerRouterHandler] = [
    v1,
    health,
    livekit_webhook,
    metrics,
    tracker,
    dashboard,
    vendored,
]
