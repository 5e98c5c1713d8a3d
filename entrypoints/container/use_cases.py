"""The use cases, each built from the storage and outside-world providers it needs.

The only place that constructs use cases: the HTTP app, the CLI and the tests all ask this
container (the HTTP app registers each provider here as a dependency of the same name).
"""

from dependency_injector import containers, providers

from application.credits.deduct_credits import DeductCredits
from application.credits.get_balance import GetBalance
from application.credits.grant_credits import GrantCredits
from application.credits.list_alerts import ListAlerts
from application.credits.list_ledger import ListLedger
from application.credits.rate_book import RateBook
from application.credits.running_cost import RunningCost
from application.credits.set_rate import SetRate
from application.data_rights.delete_resource import DeleteResource
from application.data_rights.erase_subject import EraseSubject
from application.events.event_distribution import EventDistribution
from application.events.ingest_events import IngestEvents
from application.events.list_events import ListEvents
from application.funnels.delete_funnel import DeleteFunnel
from application.funnels.get_funnel import GetFunnel
from application.funnels.list_funnels import ListFunnels
from application.funnels.report_funnel import ReportFunnel
from application.funnels.set_funnel import SetFunnel
from application.health.check_health import CheckHealth
from application.livekit.account_book import LiveKitAccountBook
from application.livekit.add_livekit_account import AddLiveKitAccount
from application.livekit.livekit_stays import LiveKitStays
from application.livekit.receive_livekit_webhook import ReceiveLiveKitWebhook
from application.livekit.set_livekit_url import SetLiveKitUrl
from application.livekit.stay_tracks import StayTracks
from application.reports.report_active import ReportActive
from application.reports.report_cost_model import ReportCostModel
from application.reports.report_daily import ReportDaily
from application.reports.report_resources import ReportResources
from application.reports.report_usage import ReportUsage
from application.reports.report_usage_stats import ReportUsageStats
from application.reports.report_watch_time import ReportWatchTime
from application.rollups.rollup_rewinds import RollupRewinds
from application.sessions.billed_kinds import BilledKinds
from application.sessions.get_session import GetSession
from application.sessions.list_sessions import ListSessions
from application.sessions.read_session import ReadSession
from application.sessions.record_exit import RecordExit
from application.sessions.record_heartbeat import RecordHeartbeat
from application.sessions.start_session import StartSession
from application.snapshots.list_snapshots import ListSnapshots
from application.snapshots.record_snapshots import RecordSnapshots
from application.telemetry.list_errors import ListErrors
from application.telemetry.list_sales import ListSales
from application.telemetry.move_settlement import MoveSettlement
from application.telemetry.record_errors import RecordErrors
from application.telemetry.record_metrics import RecordMetrics
from application.telemetry.record_sales import RecordSales
from application.telemetry.report_errors import ReportErrors
from application.telemetry.report_performance import ReportPerformance
from application.telemetry.report_sales import ReportSales
from application.tenants.authenticate import Authenticate
from application.tenants.create_api_key import CreateApiKey
from application.tenants.create_tenant import CreateTenant
from application.tenants.list_api_keys import ListApiKeys
from application.tenants.read_settings import ReadSettings
from application.tenants.revoke_api_key import RevokeApiKey
from application.tenants.tenant_book import TenantBook
from application.tenants.update_settings import UpdateSettings
from application.transfer.export_tenant import ExportTenant
from application.transfer.import_tenant import ImportTenant
from application.trials.get_limits import GetLimits
from application.trials.get_plan import GetPlan
from application.trials.get_trial_status import GetTrialStatus
from application.trials.list_plans import ListPlans
from application.trials.list_subscriptions import ListSubscriptions
from application.trials.plan_book import PlanBook
from application.trials.plan_of_subject import PlanOfSubject
from application.trials.register_resource import RegisterResource
from application.trials.report_trials import ReportTrials
from application.trials.set_plan import SetPlan
from application.trials.subscribe import Subscribe


class UseCaseContainer(containers.DeclarativeContainer):
    storage = providers.DependenciesContainer()
    outside = providers.DependenciesContainer()

    # A singleton so its short-lived cache of keys is shared by every request of the process.
    authenticate = providers.Singleton(
        Authenticate, keys=storage.api_keys, tenants=storage.tenants, clock=outside.clock
    )
    check_health = providers.Factory(CheckHealth, storage=storage.health)
    create_tenant = providers.Factory(CreateTenant, tenants=storage.tenants, clock=outside.clock)
    create_api_key = providers.Factory(
        CreateApiKey, tenants=storage.tenants, keys=storage.api_keys, clock=outside.clock
    )
    list_api_keys = providers.Factory(ListApiKeys, keys=storage.api_keys)
    revoke_api_key = providers.Factory(
        RevokeApiKey, keys=storage.api_keys, authenticate=authenticate, clock=outside.clock
    )
    # A singleton so its short-lived memory of rates is shared by every request of the process.
    rate_book = providers.Singleton(RateBook, rates=storage.rates, clock=outside.clock)
    deduct_credits = providers.Factory(
        DeductCredits,
        rate_book=rate_book,
        ledger=storage.ledger,
        erasures=storage.erasure,
        clock=outside.clock,
        tally=outside.charge_tally,
    )
    # Likewise for plans: every start reads them.
    plan_book = providers.Singleton(PlanBook, plans=storage.plans, clock=outside.clock)
    plan_of_subject = providers.Factory(
        PlanOfSubject, plans=plan_book, subscriptions=storage.subscriptions
    )
    billed_kinds = providers.Factory(BilledKinds, rate_book=rate_book, plans=plan_book)
    rollup_rewinds = providers.Factory(
        RollupRewinds, leases=storage.rollup_leases, clock=outside.clock
    )
    start_session = providers.Factory(
        StartSession,
        sessions=storage.sessions,
        rates=storage.rates,
        ledger=storage.ledger,
        plan_of_subject=plan_of_subject,
        billed_kinds=billed_kinds,
        refused_starts=storage.refused_starts,
        rewinds=rollup_rewinds,
        clock=outside.clock,
    )
    running_cost = providers.Factory(
        RunningCost, rate_book=rate_book, ledger=storage.ledger, clock=outside.clock
    )
    record_heartbeat = providers.Factory(
        RecordHeartbeat,
        sessions=storage.sessions,
        running_cost=running_cost,
        billed_kinds=billed_kinds,
        clock=outside.clock,
    )
    stay_tracks = providers.Factory(
        StayTracks,
        tracks=storage.tracks,
        sessions=storage.sessions,
        deduct_credits=deduct_credits,
        rewinds=rollup_rewinds,
    )
    record_exit = providers.Factory(
        RecordExit,
        sessions=storage.sessions,
        deduct_credits=deduct_credits,
        rewinds=rollup_rewinds,
        billed_kinds=billed_kinds,
        ends_with_session=stay_tracks,
        clock=outside.clock,
    )
    get_session = providers.Factory(GetSession, sessions=storage.sessions)
    read_session = providers.Factory(
        ReadSession, get_session=get_session, running_cost=running_cost
    )
    list_sessions = providers.Factory(ListSessions, sessions=storage.sessions)
    ingest_events = providers.Factory(
        IngestEvents,
        events=storage.events,
        sessions=storage.sessions,
        deduct_credits=deduct_credits,
        rewinds=rollup_rewinds,
        billed_kinds=billed_kinds,
        clock=outside.clock,
    )
    list_events = providers.Factory(ListEvents, get_session=get_session, events=storage.events)
    event_distribution = providers.Factory(
        EventDistribution, get_session=get_session, events=storage.events
    )
    set_rate = providers.Factory(SetRate, rate_book=rate_book)
    grant_credits = providers.Factory(GrantCredits, ledger=storage.ledger, clock=outside.clock)
    get_balance = providers.Factory(GetBalance, ledger=storage.ledger)
    list_ledger = providers.Factory(ListLedger, ledger=storage.ledger)
    list_alerts = providers.Factory(ListAlerts, ledger=storage.ledger)
    # Tenants for their settings, remembered like plans; settings change through it, so that
    # this process applies them at once.
    tenant_book = providers.Singleton(TenantBook, tenants=storage.tenants, clock=outside.clock)
    update_settings = providers.Factory(
        UpdateSettings, tenants=tenant_book, authenticate=authenticate
    )
    read_settings = providers.Factory(ReadSettings, tenants=storage.tenants)
    set_plan = providers.Factory(SetPlan, plans=plan_book)
    subscribe = providers.Factory(
        Subscribe,
        plans=storage.plans,
        subscriptions=storage.subscriptions,
        clock=outside.clock,
    )
    list_plans = providers.Factory(ListPlans, plans=storage.plans)
    get_plan = providers.Factory(GetPlan, plans=storage.plans)
    list_subscriptions = providers.Factory(ListSubscriptions, subscriptions=storage.subscriptions)
    register_resource = providers.Factory(
        RegisterResource,
        resources=storage.resources,
        plan_of_subject=plan_of_subject,
        refused_starts=storage.refused_starts,
        clock=outside.clock,
    )
    report_trials = providers.Factory(
        ReportTrials,
        plans=storage.plans,
        trial_sessions=storage.trial_sessions,
        refused_starts=storage.refused_starts,
        clock=outside.clock,
    )
    get_limits = providers.Factory(
        GetLimits, plan_of_subject=plan_of_subject, resources=storage.resources, clock=outside.clock
    )
    report_watch_time = providers.Factory(ReportWatchTime, reports=storage.reports)
    report_resources = providers.Factory(ReportResources, reports=storage.reports)
    report_usage_stats = providers.Factory(ReportUsageStats, reports=storage.reports)
    report_active = providers.Factory(ReportActive, reports=storage.reports)
    report_usage = providers.Factory(ReportUsage, rollups=storage.rollups, clock=outside.clock)
    report_daily = providers.Factory(
        ReportDaily,
        rollups=storage.rollups,
        funnels=storage.funnels,
        funnel_events=storage.funnel_events,
        funnel_days=storage.funnel_days,
        clock=outside.clock,
    )
    report_cost_model = providers.Factory(
        ReportCostModel, rollups=storage.rollups, clock=outside.clock
    )
    get_trial_status = providers.Factory(
        GetTrialStatus,
        plan_of_subject=plan_of_subject,
        sessions=storage.sessions,
        clock=outside.clock,
    )
    export_tenant = providers.Factory(
        ExportTenant, tenants=storage.tenants, archive=storage.archive
    )
    import_tenant = providers.Factory(
        ImportTenant,
        archive=storage.archive,
        rewinds=rollup_rewinds,
        sessions=storage.sessions,
        sales=storage.sales,
    )
    record_snapshots = providers.Factory(RecordSnapshots, snapshots=storage.snapshots)
    list_snapshots = providers.Factory(ListSnapshots, snapshots=storage.snapshots)
    record_errors = providers.Factory(
        RecordErrors,
        errors=storage.errors,
        sessions=storage.sessions,
        clock=outside.clock,
        rewinds=rollup_rewinds,
    )
    list_errors = providers.Factory(ListErrors, errors=storage.errors)
    report_errors = providers.Factory(ReportErrors, errors=storage.errors)
    record_metrics = providers.Factory(
        RecordMetrics, metrics=storage.metrics, sessions=storage.sessions, clock=outside.clock
    )
    report_performance = providers.Factory(ReportPerformance, metrics=storage.metrics)
    record_sales = providers.Factory(
        RecordSales,
        sales=storage.sales,
        sessions=storage.sessions,
        clock=outside.clock,
        rewinds=rollup_rewinds,
    )
    move_settlement = providers.Factory(MoveSettlement, sales=storage.sales)
    list_sales = providers.Factory(ListSales, sales=storage.sales)
    report_sales = providers.Factory(ReportSales, sales=storage.sales)
    erase_subject = providers.Factory(
        EraseSubject,
        erasure=storage.erasure,
        tenants=storage.tenants,
        rewinds=rollup_rewinds,
        clock=outside.clock,
    )
    set_funnel = providers.Factory(SetFunnel, funnels=storage.funnels)
    list_funnels = providers.Factory(ListFunnels, funnels=storage.funnels)
    get_funnel = providers.Factory(GetFunnel, funnels=storage.funnels)
    delete_funnel = providers.Factory(
        DeleteFunnel, funnels=storage.funnels, days=storage.funnel_days
    )
    report_funnel = providers.Factory(
        ReportFunnel,
        funnels=storage.funnels,
        events=storage.funnel_events,
        days=storage.funnel_days,
        clock=outside.clock,
    )
    delete_resource = providers.Factory(
        DeleteResource,
        erasure=storage.erasure,
        tenants=storage.tenants,
        rewinds=rollup_rewinds,
    )
    # Every webhook asks for its signer's account: remembered like plans, and changed through
    # the same book so that this process forgets at once.
    livekit_account_book = providers.Singleton(
        LiveKitAccountBook, accounts=storage.livekit_accounts, clock=outside.clock
    )
    add_livekit_account = providers.Factory(
        AddLiveKitAccount, tenants=storage.tenants, accounts=livekit_account_book
    )
    livekit_stays = providers.Factory(
        LiveKitStays, tracks=storage.tracks, stay_tracks=stay_tracks, record_exit=record_exit
    )
    receive_livekit_webhook = providers.Factory(
        ReceiveLiveKitWebhook,
        verifier=outside.webhook_verifier,
        accounts=livekit_account_book,
        webhooks=storage.webhooks,
        sessions=storage.sessions,
        stays=livekit_stays,
        stay_tracks=stay_tracks,
        finished_rooms=storage.finished_rooms,
        tenants=tenant_book,
        rewinds=rollup_rewinds,
        clock=outside.clock,
    )
    set_livekit_url = providers.Factory(SetLiveKitUrl, accounts=livekit_account_book)
