-- The job store on PostgreSQL, shared by several gateway replicas. The
-- same tables and rules as the SQLite store (see migrations/sqlite), in
-- PostgreSQL's own types.

-- Jobs: one row per backup request. Ids are UUIDv7 (they sort by creation
-- time, which paging relies on).
CREATE TABLE jobs (
    id                  UUID PRIMARY KEY,
    project_id          TEXT NOT NULL,
    cloud               TEXT NOT NULL,
    snapshot_id         TEXT NOT NULL,
    volume_id           TEXT NOT NULL,
    backup_id           TEXT,
    options             JSONB NOT NULL,         -- the caller's request fields
    state               TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    error               JSONB,                  -- problem object
    attempts            INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at     TIMESTAMPTZ,
    upstream_request_id TEXT,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL,
    started_at          TIMESTAMPTZ,
    finished_at         TIMESTAMPTZ,
    -- Set (before the call) when a POST of the job may reach Cinder; see
    -- the SQLite migration `exactly_once` for the rule.
    posted_at           TIMESTAMPTZ,
    -- Every write is compare-and-set on this version.
    version             BIGINT NOT NULL DEFAULT 0,
    -- True once the job's id was shown to anyone but its creating request.
    shown               BOOLEAN NOT NULL DEFAULT FALSE
);

-- One queued or running job per snapshot and tenant, across replicas.
CREATE UNIQUE INDEX jobs_one_active_per_snapshot
    ON jobs (project_id, snapshot_id)
    WHERE state IN ('queued', 'running');

-- A tenant's jobs, newest first.
CREATE INDEX jobs_by_tenant ON jobs (project_id, id DESC);

-- The worker's scan of unfinished jobs.
CREATE INDEX jobs_active ON jobs (state) WHERE state IN ('queued', 'running');

-- Retention: finished jobs by the time they finished.
CREATE INDEX jobs_finished ON jobs (finished_at)
    WHERE state IN ('succeeded', 'failed', 'cancelled');

-- Every change of a job's version is announced on this channel (payload:
-- the job id), so that a long poll on one replica wakes when another
-- replica changes its job.
CREATE FUNCTION backup_gateway_job_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('backup_gateway_job_changes', NEW.id::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_changed AFTER UPDATE ON jobs
    FOR EACH ROW WHEN (OLD.version IS DISTINCT FROM NEW.version)
    EXECUTE FUNCTION backup_gateway_job_changed();

-- Idempotency-Key of creates, per tenant (see the SQLite migration).
CREATE TABLE idempotency_keys (
    project_id  TEXT NOT NULL,
    key         TEXT NOT NULL,
    request     TEXT NOT NULL,
    job_id      UUID,
    answered    BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (project_id, key)
);

CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);

-- Per-tenant leases: only the holder polls and submits for a tenant until
-- `expires_at` (on the database's clock, so replicas' clocks never matter).
-- Every take-over bumps `generation`; the worker's job writes carry it and
-- are refused once the lease is gone (fencing).
CREATE TABLE tenant_leases (
    cloud       TEXT NOT NULL,
    project_id  TEXT NOT NULL,
    holder      TEXT NOT NULL,
    generation  BIGINT NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (cloud, project_id)
);

CREATE INDEX tenant_leases_by_holder ON tenant_leases (holder);

-- Replicas seen alive: those seen within a lease's time to live share the
-- tenants.
CREATE TABLE gateway_replicas (
    id          TEXT PRIMARY KEY,
    started_at  TIMESTAMPTZ NOT NULL,
    seen_at     TIMESTAMPTZ NOT NULL
);
