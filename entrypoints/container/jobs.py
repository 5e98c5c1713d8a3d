"""The background jobs: what the server runs on a schedule and the CLI runs on demand."""

from dependency_injector import containers, providers

from application.funnels.roll_up_funnels import RollUpFunnels
from application.livekit.end_stays_in_finished_rooms import EndStaysInFinishedRooms
from application.livekit.reconcile_livekit import ReconcileLiveKit
from application.retention.apply_retention import ApplyRetention
from application.rollups.roll_up_usage import RollUpUsage
from application.sessions.reap_stale_sessions import ReapStaleSessions


class JobContainer(containers.DeclarativeContainer):
    storage = providers.DependenciesContainer()
    outside = providers.DependenciesContainer()
    use_cases = providers.DependenciesContainer()

    reap_stale_sessions = providers.Factory(
        ReapStaleSessions,
        tenants=storage.tenants,
        sessions=storage.sessions,
        livekit_accounts=storage.livekit_accounts,
        end_stays_in_finished_rooms=providers.Factory(
            EndStaysInFinishedRooms,
            sessions=storage.sessions,
            finished_rooms=storage.finished_rooms,
            stays=use_cases.livekit_stays,
        ),
        deduct_credits=use_cases.deduct_credits,
        reports=storage.reports,
        clock=outside.clock,
        pause_seconds=storage.batch_pause_seconds,
    )
    roll_up_usage = providers.Factory(
        RollUpUsage,
        tenants=storage.tenants,
        source=storage.usage_source,
        snapshots=storage.snapshots,
        rollups=storage.rollups,
        leases=storage.rollup_leases,
        funnels=providers.Factory(
            RollUpFunnels,
            funnels=storage.funnels,
            events=storage.funnel_events,
            days=storage.funnel_days,
        ),
        clock=outside.clock,
    )
    apply_retention = providers.Factory(
        ApplyRetention,
        tenants=storage.tenants,
        retention=storage.retention,
        erasure=storage.erasure,
        erase_subject=use_cases.erase_subject,
        plans=storage.plans,
        clock=outside.clock,
    )
    reconcile_livekit = providers.Factory(
        ReconcileLiveKit,
        tenants=storage.tenants,
        accounts=storage.livekit_accounts,
        sessions=storage.sessions,
        stays=use_cases.livekit_stays,
        rooms=outside.livekit_rooms,
        clock=outside.clock,
    )
