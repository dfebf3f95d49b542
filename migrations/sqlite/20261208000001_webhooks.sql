-- Webhooks: a tenant's subscriptions, and one delivery per event and
-- subscription (see the PostgreSQL migration `webhooks` for the rules).
-- Times are milliseconds since the epoch, as in `jobs`.
CREATE TABLE webhook_subscriptions (
    id                      TEXT PRIMARY KEY,
    project_id              TEXT NOT NULL,
    url                     TEXT NOT NULL,
    description             TEXT NOT NULL DEFAULT '',
    event_types             TEXT,
    job_id                  TEXT,
    secret                  TEXT NOT NULL,
    previous_secret         TEXT,
    previous_secret_until   INTEGER,
    cursor                  INTEGER NOT NULL,
    closed                  INTEGER NOT NULL DEFAULT 0,
    held_until              INTEGER,
    sending_by              TEXT,
    sending_until           INTEGER,
    created_at              INTEGER NOT NULL
);

CREATE INDEX webhook_subscriptions_by_tenant ON webhook_subscriptions (project_id, id);

CREATE TABLE webhook_deliveries (
    id                  TEXT PRIMARY KEY,
    subscription_id     TEXT NOT NULL REFERENCES webhook_subscriptions (id) ON DELETE CASCADE,
    event_seq           INTEGER NOT NULL,
    event_type          TEXT NOT NULL,
    job_id              TEXT NOT NULL,
    payload             TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts            INTEGER NOT NULL DEFAULT 0,
    created_at          INTEGER NOT NULL,
    next_attempt_at     INTEGER,
    last_attempt_at     INTEGER,
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
