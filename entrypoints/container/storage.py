"""Storage: the family chosen by the URL scheme of the storage URL, and its repositories."""

from dependency_injector import containers, providers

from adapters.memory.storage import MemoryStorage
from adapters.mongodb.storage import MongoStorage
from adapters.sqlalchemy.storage import SqlAlchemyStorage


class StorageContainer(containers.DeclarativeContainer):
    config = providers.Configuration()

    backend = providers.Selector(
        config.family,
        memory=providers.Singleton(MemoryStorage),
        sqlalchemy=providers.Singleton(
            SqlAlchemyStorage,
            url=config.url,
            connections=config.postgres_connections,
            wait_seconds=config.wait_seconds,
            serving=config.serving,
        ),
        mongodb=providers.Singleton(MongoStorage, url=config.url, wait_seconds=config.wait_seconds),
    )
    sessions = backend.provided.sessions
    events = backend.provided.events
    tenants = backend.provided.tenants
    api_keys = backend.provided.api_keys
    rates = backend.provided.rates
    ledger = backend.provided.ledger
    plans = backend.provided.plans
    subscriptions = backend.provided.subscriptions
    resources = backend.provided.resources
    reports = backend.provided.reports
    health = backend.provided.health
    archive = backend.provided.archive
    livekit_accounts = backend.provided.livekit_accounts
    webhooks = backend.provided.webhooks
    tracks = backend.provided.tracks
    finished_rooms = backend.provided.finished_rooms
    snapshots = backend.provided.snapshots
    retention = backend.provided.retention
    usage_source = backend.provided.usage_source
    rollups = backend.provided.rollups
    rollup_leases = backend.provided.rollup_leases
    errors = backend.provided.errors
    metrics = backend.provided.metrics
    sales = backend.provided.sales
    erasure = backend.provided.erasure
    refused_starts = backend.provided.refused_starts
    trial_sessions = backend.provided.trial_sessions
    funnels = backend.provided.funnels
    funnel_events = backend.provided.funnel_events
    funnel_days = backend.provided.funnel_days
    batch_pause_seconds = backend.provided.batch_pause_seconds
