-- Webhooks: a tenant's subscriptions, and one delivery per event and
-- subscription. Deliveries are made from the event log: each subscription
-- keeps the number of the last of its tenant's events turned into
-- deliveries (`cursor`), moved on in the transaction that records them, so
-- that whichever replica records them, each event is delivered once per
-- subscription (at least once to the receiver: an attempt cut short by a
-- crash is made again).
CREATE TABLE webhook_subscriptions (
    id                      UUID PRIMARY KEY,
    project_id              TEXT NOT NULL,
    url                     TEXT NOT NULL,
    description             TEXT NOT NULL DEFAULT '',
    -- JSON array of event types; NULL: every type.
    event_types             JSONB,
    -- A create's `callback_url`: this job's events only.
    job_id                  UUID,
    secret                  TEXT NOT NULL,
    -- The secret before the last rotation, still signed with until then.
    previous_secret         TEXT,
    previous_secret_until   TIMESTAMPTZ,
    cursor                  BIGINT NOT NULL,
    -- A callback whose job has ended: no more events to deliver.
    closed                  BOOLEAN NOT NULL DEFAULT FALSE,
    -- A callback whose create is not answered yet: its deliveries wait
    -- (until then at the latest), so that the caller has its secret first.
    held_until              TIMESTAMPTZ,
    -- The replica delivering to it now, and until when it may: one at a
    -- time, so that its deliveries go in the order of their events.
    sending_by              TEXT,
    sending_until           TIMESTAMPTZ,
    created_at              TIMESTAMPTZ NOT NULL
);

CREATE INDEX webhook_subscriptions_by_tenant ON webhook_subscriptions (project_id, id);

CREATE TABLE webhook_deliveries (
    id                  UUID PRIMARY KEY,
    subscription_id     UUID NOT NULL REFERENCES webhook_subscriptions (id) ON DELETE CASCADE,
    event_seq           BIGINT NOT NULL,
    event_type          TEXT NOT NULL,
    job_id              UUID NOT NULL,
    payload             TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts            INTEGER NOT NULL DEFAULT 0,
    created_at          TIMESTAMPTZ NOT NULL,
    next_attempt_at     TIMESTAMPTZ,
    last_attempt_at     TIMESTAMPTZ,
    last_status_code    INTEGER,
    last_error          TEXT,
    UNIQUE (subscription_id, event_seq)
);

CREATE INDEX webhook_subscriptions_open ON webhook_subscriptions (project_id) WHERE NOT closed;
-- The webhooks with deliveries due (the claims start from them), and one
-- webhook's due deliveries.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (subscription_id, next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_by_subscription ON webhook_deliveries (subscription_id, id);
CREATE INDEX webhook_deliveries_by_age ON webhook_deliveries (created_at);

-- A job's events (a callback's, and `GET /events?job_id=`).
CREATE INDEX job_events_by_job ON job_events (project_id, job_id, seq);
