-- Jobs: one row per backup request. Times are milliseconds since the epoch
-- (UTC), ids are UUIDv7 text (they sort by creation time).
CREATE TABLE jobs (
    id                  TEXT PRIMARY KEY NOT NULL,
    project_id          TEXT NOT NULL,
    cloud               TEXT NOT NULL,
    snapshot_id         TEXT NOT NULL,
    volume_id           TEXT NOT NULL,
    backup_id           TEXT,
    options             TEXT NOT NULL,          -- JSON: the caller's request fields
    state               TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    error               TEXT,                   -- JSON problem object
    attempts            INTEGER NOT NULL DEFAULT 0,
    next_attempt_at     INTEGER,
    upstream_request_id TEXT,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    started_at          INTEGER,
    finished_at         INTEGER
);

-- One queued or running job per snapshot and tenant: Cinder's own status
-- check races (two creates can both pass it), so the store serialises them.
CREATE UNIQUE INDEX jobs_one_active_per_snapshot
    ON jobs (project_id, snapshot_id)
    WHERE state IN ('queued', 'running');

-- A tenant's jobs, newest first.
CREATE INDEX jobs_by_tenant ON jobs (project_id, id DESC);

-- The worker's scan of unfinished jobs.
CREATE INDEX jobs_active ON jobs (state) WHERE state IN ('queued', 'running');
