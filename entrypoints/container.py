"""The composition root: the only place that chooses concrete classes.

The storage family comes from the URL scheme of SESSIONMETER_STORAGE_URL; use cases receive the
repositories of whichever family was chosen and never know which one it is.
"""

from dependency_injector import containers, providers

from adapters.livekit.room_service import LiveKitRoomService
from adapters.livekit.webhook_verifier import LiveKitWebhookVerifier
from adapters.memory.storage import MemoryStorage
from adapters.mongodb.storage import MongoStorage
from adapters.sqlalchemy.storage import SqlAlchemyStorage
from adapters.system_clock import SystemClock
from application.credits.deduct_credits import DeductCredits
from application.credits.get_balance import GetBalance
from application.credits.grant_credits import GrantCredits
from application.credits.list_alerts import ListAlerts
from application.credits.list_ledger import ListLedger
from application.credits.rate_book import RateBook
from application.credits.running_cost import RunningCost
from application.credits.set_rate import SetRate
from application.events.event_distribution import EventDistribution
from application.events.ingest_events import IngestEvents
from application.events.list_events import ListEvents
from application.health.check_health import CheckHealth
from application.livekit.add_livekit_account import AddLiveKitAccount
from application.livekit.receive_livekit_webhook import ReceiveLiveKitWebhook
from application.livekit.reconcile_livekit import ReconcileLiveKit
from application.livekit.set_livekit_url import SetLiveKitUrl
from application.reports.report_active import ReportActive
from application.reports.report_cost_model import ReportCostModel
from application.reports.report_resources import ReportResources
from application.reports.report_usage import ReportUsage
from application.reports.report_usage_stats import ReportUsageStats
from application.reports.report_watch_time import ReportWatchTime
from application.retention.apply_retention import ApplyRetention
from application.rollups.roll_up_usage import RollUpUsage
from application.rollups.rollup_rewinds import RollupRewinds
from application.sessions.get_session import GetSession
from application.sessions.list_sessions import ListSessions
from application.sessions.read_session import ReadSession
from application.sessions.reap_stale_sessions import ReapStaleSessions
from application.sessions.record_exit import RecordExit
from application.sessions.record_heartbeat import RecordHeartbeat
from application.sessions.start_session import StartSession
from application.snapshots.list_snapshots import ListSnapshots
from application.snapshots.record_snapshots import RecordSnapshots
from application.tenants.authenticate import Authenticate
from application.tenants.create_api_key import CreateApiKey
from application.tenants.create_tenant import CreateTenant
from application.tenants.update_settings import UpdateSettings
from application.transfer.export_tenant import ExportTenant
from application.transfer.import_tenant import ImportTenant
from application.trials.get_limits import GetLimits
from application.trials.get_trial_status import GetTrialStatus
from application.trials.plan_of_subject import PlanOfSubject
from application.trials.register_resource import RegisterResource
from application.trials.set_plan import SetPlan
from application.trials.subscribe import Subscribe
from entrypoints.settings import Settings


class Container(containers.DeclarativeContainer):
    config = providers.Configuration()

    clock = providers.Singleton(SystemClock)
    storage = providers.Selector(
        config.storage.family,
        memory=providers.Singleton(MemoryStorage),
        sqlalchemy=providers.Singleton(SqlAlchemyStorage, url=config.storage.url),
        mongodb=providers.Singleton(MongoStorage, url=config.storage.url),
    )
    sessions = storage.provided.sessions
    events = storage.provided.events
    tenants = storage.provided.tenants
    api_keys = storage.provided.api_keys
    rates = storage.provided.rates
    ledger = storage.provided.ledger
    plans = storage.provided.plans
    subscriptions = storage.provided.subscriptions
    resources = storage.provided.resources
    reports = storage.provided.reports
    archive = storage.provided.archive
    livekit_accounts = storage.provided.livekit_accounts
    webhooks = storage.provided.webhooks
    tracks = storage.provided.tracks
    snapshots = storage.provided.snapshots
    retention = storage.provided.retention
    usage_source = storage.provided.usage_source
    rollups = storage.provided.rollups
    rollup_leases = storage.provided.rollup_leases
    webhook_verifier = providers.Singleton(LiveKitWebhookVerifier)
    livekit_rooms = providers.Singleton(LiveKitRoomService)

    # A singleton so its short-lived cache of keys is shared by every request of the process.
    authenticate = providers.Singleton(Authenticate, keys=api_keys, tenants=tenants, clock=clock)
    check_health = providers.Factory(CheckHealth, storage=storage.provided.health)
    create_tenant = providers.Factory(CreateTenant, tenants=tenants, clock=clock)
    create_api_key = providers.Factory(CreateApiKey, tenants=tenants, keys=api_keys, clock=clock)
    # A singleton so its short-lived memory of rates is shared by every request of the process.
    rate_book = providers.Singleton(RateBook, rates=rates, clock=clock)
    deduct_credits = providers.Factory(
        DeductCredits, rate_book=rate_book, ledger=ledger, clock=clock
    )
    plan_of_subject = providers.Factory(PlanOfSubject, plans=plans, subscriptions=subscriptions)
    start_session = providers.Factory(
        StartSession,
        sessions=sessions,
        rates=rates,
        ledger=ledger,
        plan_of_subject=plan_of_subject,
        clock=clock,
    )
    running_cost = providers.Factory(RunningCost, rate_book=rate_book, ledger=ledger, clock=clock)
    record_heartbeat = providers.Factory(
        RecordHeartbeat, sessions=sessions, running_cost=running_cost, clock=clock
    )
    rollup_rewinds = providers.Factory(RollupRewinds, leases=rollup_leases, clock=clock)
    record_exit = providers.Factory(
        RecordExit,
        sessions=sessions,
        deduct_credits=deduct_credits,
        rewinds=rollup_rewinds,
        clock=clock,
    )
    get_session = providers.Factory(GetSession, sessions=sessions)
    read_session = providers.Factory(
        ReadSession, get_session=get_session, running_cost=running_cost
    )
    list_sessions = providers.Factory(ListSessions, sessions=sessions)
    ingest_events = providers.Factory(
        IngestEvents,
        events=events,
        sessions=sessions,
        deduct_credits=deduct_credits,
        rewinds=rollup_rewinds,
        clock=clock,
    )
    list_events = providers.Factory(ListEvents, get_session=get_session, events=events)
    event_distribution = providers.Factory(
        EventDistribution, get_session=get_session, events=events
    )
    reap_stale_sessions = providers.Factory(
        ReapStaleSessions,
        tenants=tenants,
        sessions=sessions,
        livekit_accounts=livekit_accounts,
        deduct_credits=deduct_credits,
        clock=clock,
    )
    set_rate = providers.Factory(SetRate, rate_book=rate_book)
    grant_credits = providers.Factory(GrantCredits, ledger=ledger, clock=clock)
    get_balance = providers.Factory(GetBalance, ledger=ledger)
    list_ledger = providers.Factory(ListLedger, ledger=ledger)
    list_alerts = providers.Factory(ListAlerts, ledger=ledger)
    update_settings = providers.Factory(UpdateSettings, tenants=tenants, authenticate=authenticate)
    set_plan = providers.Factory(SetPlan, plans=plans)
    subscribe = providers.Factory(Subscribe, plans=plans, subscriptions=subscriptions)
    register_resource = providers.Factory(
        RegisterResource, resources=resources, plan_of_subject=plan_of_subject, clock=clock
    )
    get_limits = providers.Factory(
        GetLimits, plan_of_subject=plan_of_subject, resources=resources, clock=clock
    )
    report_watch_time = providers.Factory(ReportWatchTime, reports=reports)
    report_resources = providers.Factory(ReportResources, reports=reports)
    report_usage_stats = providers.Factory(ReportUsageStats, reports=reports)
    report_active = providers.Factory(ReportActive, reports=reports)
    report_usage = providers.Factory(ReportUsage, rollups=rollups, clock=clock)
    report_cost_model = providers.Factory(ReportCostModel, rollups=rollups, clock=clock)
    roll_up_usage = providers.Factory(
        RollUpUsage,
        tenants=tenants,
        source=usage_source,
        snapshots=snapshots,
        rollups=rollups,
        leases=rollup_leases,
        clock=clock,
    )
    get_trial_status = providers.Factory(
        GetTrialStatus, plan_of_subject=plan_of_subject, sessions=sessions, clock=clock
    )
    export_tenant = providers.Factory(ExportTenant, tenants=tenants, archive=archive)
    import_tenant = providers.Factory(ImportTenant, archive=archive)
    record_snapshots = providers.Factory(RecordSnapshots, snapshots=snapshots)
    apply_retention = providers.Factory(
        ApplyRetention, tenants=tenants, retention=retention, clock=clock
    )
    list_snapshots = providers.Factory(ListSnapshots, snapshots=snapshots)
    add_livekit_account = providers.Factory(
        AddLiveKitAccount, tenants=tenants, accounts=livekit_accounts
    )
    receive_livekit_webhook = providers.Factory(
        ReceiveLiveKitWebhook,
        verifier=webhook_verifier,
        accounts=livekit_accounts,
        webhooks=webhooks,
        sessions=sessions,
        tracks=tracks,
        record_exit=record_exit,
        deduct_credits=deduct_credits,
        tenants=tenants,
        clock=clock,
    )
    set_livekit_url = providers.Factory(SetLiveKitUrl, accounts=livekit_accounts)
    reconcile_livekit = providers.Factory(
        ReconcileLiveKit,
        tenants=tenants,
        accounts=livekit_accounts,
        sessions=sessions,
        tracks=tracks,
        rooms=livekit_rooms,
        record_exit=record_exit,
        clock=clock,
    )


def build_container(settings: Settings) -> Container:
    container = Container()
    container.config.from_dict(
        {"storage": {"family": settings.storage_family, "url": settings.storage_url}}
    )
    return container
