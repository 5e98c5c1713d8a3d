"""Every collection and its indexes: the unique ones carry the guarantees of the ports.

Without multi-document transactions (many deployments are standalone servers), each race-free
step of the ports is a single-document write that a unique index or a guarded
`find_one_and_update` decides:

- sessions (tenant_id, id): one session per id, whatever the number of concurrent starts.
- sessions (tenant_id, subject_id, resource_id, slot.group, slot.n): a session started under a
  trial limit takes a numbered slot; two starts cannot take the same slot, so of N concurrent
  starts for the last one exactly one is stored.
- events (tenant_id, session_id, sequence_no): an event is stored once.
- ledger (tenant_id, idempotency_key) and (tenant_id, session_id, session_revision): a grant per
  key, one entry per revision of a session's charge (the charge, then its adjustments).
- subject_resources (tenant_id, subject_id, resource_id) and the monthly slot: as for sessions.
- rollup_leases (tenant_id): one lease document per tenant, so one rollup runner at a time.
- ledger_turns (tenant_id, subject_id): one settlement of a subject at a time (ledger_turns.py).
- erasures_under_way (tenant_id, subject_id): one pseudonym per erasure of a subject, whatever
  the number of concurrent or retried erasures (erasure.py).
- funnels (tenant_id, name): one funnel per name, whatever the number of concurrent puts.
- plans (tenant_id) where default: at most one default plan per tenant, whatever the number of
  concurrent puts of default plans (see plans.py).
- errors, performance_metrics, sales (tenant_id, id): a record per client id; of concurrent adds
  of one id one inserts it and the others read it back (telemetry.py).
- refused_starts (tenant_id, day, subject_id, kind, reason): one counter per refusal and day,
  that concurrent upserts with `$inc` add to (refused_starts.py).

`sessionmeter db upgrade` creates them all; creating an index that exists is a no-op. Every key
is ascending: MongoDB walks an index backwards for newest-first reads, and the test server
(SecantusDB 0.7) drops the equal bound of a range ($gte) on a descending key.
"""

from pymongo import ASCENDING, IndexModel

from adapters.mongodb.livekit import ENDS_IN_FLIGHT
from domain.livekit import WEBHOOK_MEMORY

# Replaced by another index: dropped by `db upgrade` where an older version created them.
RETIRED = {"ledger": ["ux_ledger_session"], "sessions": ["ix_sessions_ended"]}


def _exists(field: str) -> dict[str, dict[str, dict[str, bool]]]:
    return {"partialFilterExpression": {field: {"$exists": True}}}


INDEXES: dict[str, list[IndexModel]] = {
    "tenants": [
        IndexModel([("id", ASCENDING)], unique=True, name="ux_tenants_id"),
        IndexModel([("name", ASCENDING)], unique=True, name="ux_tenants_name"),
    ],
    "api_keys": [
        IndexModel([("secret_hash", ASCENDING)], unique=True, name="ux_api_keys_secret"),
        IndexModel([("tenant_id", ASCENDING), ("id", ASCENDING)], name="ix_api_keys_tenant"),
    ],
    "sessions": [
        IndexModel([("tenant_id", ASCENDING), ("id", ASCENDING)], unique=True, name="ux_sessions"),
        # Settlements cut short (a claim whose ledger entry is not written yet): few, found fast.
        IndexModel(
            [("tenant_id", ASCENDING)],
            name="ix_sessions_due",
            **_exists("due.revision"),
        ),
        IndexModel(
            [
                ("tenant_id", ASCENDING),
                ("subject_id", ASCENDING),
                ("resource_id", ASCENDING),
                ("slot.group", ASCENDING),
                ("slot.n", ASCENDING),
            ],
            unique=True,
            name="ux_sessions_trial_slot",
            **_exists("slot"),
        ),
        IndexModel(
            [("tenant_id", ASCENDING), ("started_at", ASCENDING), ("id", ASCENDING)],
            name="ix_sessions_started",
        ),
        IndexModel(
            [("tenant_id", ASCENDING), ("status", ASCENDING), ("last_seen_at", ASCENDING)],
            name="ix_sessions_idle",
        ),
        # Watch time reads a resource's sessions viewer by viewer in start order; trial limits
        # count a subject's sessions on a resource with it too.
        IndexModel(
            [
                ("tenant_id", ASCENDING),
                ("resource_id", ASCENDING),
                ("subject_id", ASCENDING),
                ("started_at", ASCENDING),
            ],
            name="ix_sessions_resource_viewers",
        ),
        IndexModel(
            [("tenant_id", ASCENDING), ("subject_id", ASCENDING), ("started_at", ASCENDING)],
            name="ix_sessions_subject",
        ),
        # An anonymous visitor's sessions (the sessions list by client_key).
        IndexModel(
            [("tenant_id", ASCENDING), ("client_key", ASCENDING), ("started_at", ASCENDING)],
            name="ix_sessions_client_key",
        ),
        IndexModel(
            [("tenant_id", ASCENDING), ("kind", ASCENDING), ("started_at", ASCENDING)],
            name="ix_sessions_kind",
        ),
        IndexModel(
            [("tenant_id", ASCENDING), ("charge_state", ASCENDING)],
            name="ix_sessions_charge_state",
        ),
        # Rollups find the sessions that were still running in an hour by their end; retention
        # walks the expired ones in this order, resuming where a step stopped.
        IndexModel(
            [("tenant_id", ASCENDING), ("ended_at", ASCENDING), ("id", ASCENDING)],
            name="ix_sessions_ended_id",
        ),
        # … and those with track time in an hour by when their last track ended.
        IndexModel(
            [("tenant_id", ASCENDING), ("tracks_until", ASCENDING)],
            name="ix_sessions_tracks_until",
            **_exists("tracks_until"),
        ),
        # Track ends in flight (livekit.py): few, and those a write that died left are found fast
        # (finish_dead_track_ends). (Not keyed on tenant_id alone: ix_sessions_due is, and a key
        # pattern is one index but on the servers that tell partial ones apart, MongoDB 7.0 on.)
        IndexModel(
            [("tenant_id", ASCENDING), (ENDS_IN_FLIGHT, ASCENDING)],
            name="ix_sessions_ends_in_flight",
            partialFilterExpression={ENDS_IN_FLIGHT: {"$gt": 0}},
        ),
    ],
    "events": [
        IndexModel(
            [("tenant_id", ASCENDING), ("session_id", ASCENDING), ("sequence_no", ASCENDING)],
            unique=True,
            name="ux_events",
        ),
        # Retention deletes a tenant's oldest events a batch at a time.
        IndexModel([("tenant_id", ASCENDING), ("at", ASCENDING)], name="ix_events_at"),
        IndexModel(
            [("tenant_id", ASCENDING), ("batch", ASCENDING)],
            name="ix_events_uncounted",
            **_exists("batch"),
        ),
    ],
    "rates": [
        IndexModel([("tenant_id", ASCENDING), ("kind", ASCENDING)], unique=True, name="ux_rates"),
    ],
    "ledger": [
        IndexModel([("tenant_id", ASCENDING), ("id", ASCENDING)], unique=True, name="ux_ledger"),
        IndexModel(
            [("tenant_id", ASCENDING), ("idempotency_key", ASCENDING)],
            unique=True,
            name="ux_ledger_idempotency_key",
            **_exists("idempotency_key"),
        ),
        IndexModel(
            [("tenant_id", ASCENDING), ("session_id", ASCENDING), ("session_revision", ASCENDING)],
            unique=True,
            name="ux_ledger_session_revision",
            **_exists("session_id"),
        ),
        IndexModel(
            [
                ("tenant_id", ASCENDING),
                ("subject_id", ASCENDING),
                ("created_at", ASCENDING),
                ("id", ASCENDING),
            ],
            name="ix_ledger_subject",
        ),
    ],
    "alerts": [
        IndexModel([("tenant_id", ASCENDING), ("id", ASCENDING)], unique=True, name="ux_alerts"),
        IndexModel(
            [("tenant_id", ASCENDING), ("session_id", ASCENDING), ("kind", ASCENDING)],
            unique=True,
            name="ux_alerts_session",
            **_exists("session_id"),
        ),
        IndexModel(
            [("tenant_id", ASCENDING), ("created_at", ASCENDING), ("id", ASCENDING)],
            name="ix_alerts_created",
        ),
    ],
    "plans": [
        IndexModel([("tenant_id", ASCENDING), ("id", ASCENDING)], unique=True, name="ux_plans"),
        IndexModel(
            [("tenant_id", ASCENDING)],
            unique=True,
            name="ux_plans_default",
            partialFilterExpression={"default": True},
        ),
    ],
    "subscriptions": [
        IndexModel(
            [("tenant_id", ASCENDING), ("subject_id", ASCENDING)],
            unique=True,
            name="ux_subscriptions",
        ),
    ],
    "subscription_history": [
        IndexModel(
            [("tenant_id", ASCENDING), ("subject_id", ASCENDING), ("number", ASCENDING)],
            unique=True,
            name="ux_subscription_history",
        ),
    ],
    "funnels": [
        IndexModel([("tenant_id", ASCENDING), ("name", ASCENDING)], unique=True, name="ux_funnels"),
    ],
    "refused_starts": [
        IndexModel(
            [
                ("tenant_id", ASCENDING),
                ("day", ASCENDING),
                ("subject_id", ASCENDING),
                ("kind", ASCENDING),
                ("reason", ASCENDING),
            ],
            unique=True,
            name="ux_refused_starts",
        ),
    ],
    "subject_resources": [
        IndexModel(
            [("tenant_id", ASCENDING), ("subject_id", ASCENDING), ("resource_id", ASCENDING)],
            unique=True,
            name="ux_subject_resources",
        ),
        IndexModel(
            [
                ("tenant_id", ASCENDING),
                ("subject_id", ASCENDING),
                ("slot.month", ASCENDING),
                ("slot.n", ASCENDING),
            ],
            unique=True,
            name="ux_subject_resources_monthly_slot",
            **_exists("slot"),
        ),
        IndexModel(
            [("tenant_id", ASCENDING), ("subject_id", ASCENDING), ("registered_at", ASCENDING)],
            name="ix_subject_resources_month",
        ),
    ],
    "livekit_accounts": [
        IndexModel([("api_key", ASCENDING)], unique=True, name="ux_livekit_accounts"),
        IndexModel([("tenant_id", ASCENDING)], name="ix_livekit_accounts_tenant"),
    ],
    "webhooks": [
        IndexModel([("tenant_id", ASCENDING), ("id", ASCENDING)], unique=True, name="ux_webhooks"),
        # Handled webhook ids expire on their own (see retention.py).
        IndexModel(
            [("received_at", ASCENDING)],
            expireAfterSeconds=int(WEBHOOK_MEMORY.total_seconds()),
            name="ttl_webhooks_received",
        ),
    ],
    "finished_rooms": [
        IndexModel(
            [("tenant_id", ASCENDING), ("room_sid", ASCENDING)],
            unique=True,
            name="ux_finished_rooms",
        ),
        # Forgotten with the handled webhook ids, on their own.
        IndexModel(
            [("finished_at", ASCENDING)],
            expireAfterSeconds=int(WEBHOOK_MEMORY.total_seconds()),
            name="ttl_finished_rooms",
        ),
    ],
    "snapshots": [
        IndexModel(
            [("tenant_id", ASCENDING), ("source", ASCENDING), ("at", ASCENDING)],
            unique=True,
            name="ux_snapshots",
        ),
    ],
    # One document per bucket (replaced whole) and one lease per tenant.
    "rollups": [
        IndexModel(
            [("tenant_id", ASCENDING), ("period", ASCENDING), ("start", ASCENDING)],
            unique=True,
            name="ux_rollups",
        ),
    ],
    # One document per funnel and day (replaced whole), its rows inside.
    "funnel_days": [
        IndexModel(
            [("tenant_id", ASCENDING), ("funnel", ASCENDING), ("day_start", ASCENDING)],
            unique=True,
            name="ux_funnel_days",
        ),
    ],
    "rollup_leases": [
        IndexModel([("tenant_id", ASCENDING)], unique=True, name="ux_rollup_leases"),
    ],
    "ledger_turns": [
        IndexModel(
            [("tenant_id", ASCENDING), ("subject_id", ASCENDING)],
            unique=True,
            name="ux_ledger_turns",
        ),
    ],
    "erasures_under_way": [
        IndexModel(
            [("tenant_id", ASCENDING), ("subject_id", ASCENDING)],
            unique=True,
            name="ux_erasures_under_way",
        ),
        # A settlement asks whether its session's pseudonym is an unfinished erasure's.
        IndexModel(
            [("tenant_id", ASCENDING), ("pseudonym", ASCENDING)],
            name="ix_erasures_under_way_pseudonym",
        ),
    ],
    # Kiosk telemetry: listed newest first (at, then id), reported and deleted by time.
    "errors": [
        IndexModel([("tenant_id", ASCENDING), ("id", ASCENDING)], unique=True, name="ux_errors"),
        IndexModel(
            [("tenant_id", ASCENDING), ("at", ASCENDING), ("id", ASCENDING)], name="ix_errors_at"
        ),
        IndexModel(
            [("tenant_id", ASCENDING), ("fingerprint", ASCENDING), ("at", ASCENDING)],
            name="ix_errors_fingerprint",
        ),
    ],
    "performance_metrics": [
        IndexModel(
            [("tenant_id", ASCENDING), ("id", ASCENDING)],
            unique=True,
            name="ux_performance_metrics",
        ),
        IndexModel(
            [("tenant_id", ASCENDING), ("started_at", ASCENDING)],
            name="ix_performance_metrics_started",
        ),
    ],
    "sales": [
        IndexModel([("tenant_id", ASCENDING), ("id", ASCENDING)], unique=True, name="ux_sales"),
        IndexModel(
            [("tenant_id", ASCENDING), ("occurred_at", ASCENDING), ("id", ASCENDING)],
            name="ix_sales_occurred",
        ),
        IndexModel(
            [
                ("tenant_id", ASCENDING),
                ("session_id", ASCENDING),
                ("occurred_at", ASCENDING),
                ("id", ASCENDING),
            ],
            name="ix_sales_session",
        ),
        # What a sale's refunds gave back (MongoSaleBook._hold).
        IndexModel([("tenant_id", ASCENDING), ("refund_of", ASCENDING)], name="ix_sales_refund_of"),
    ],
}
