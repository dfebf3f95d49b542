-- Events, second version, and the expected completion of running jobs.
--
-- * A retry is an event whenever one is scheduled: a queued job written
--   again (a new row version) with a reason, apart from a claim for a POST.
--   The first rule compared the time of the next attempt only, and missed a
--   retry after a POST that got no answer: that retry keeps the time the
--   claim had set (the POST's outcome is settled only then).
-- * A job keeps the size of its snapshot (GiB, as Cinder gave it) and, while
--   running, when it is expected to complete (`expected_completion_at`,
--   estimated from the tenant's earlier backups); events carry it, and a
--   new estimate of a running job is an event (`estimate_changed`).
-- * Each tenant's counter says how far its events may have been purged.

ALTER TABLE jobs ADD COLUMN size_gib INTEGER;
ALTER TABLE jobs ADD COLUMN expected_completion_at INTEGER;

-- The triggers go first: the events table is rebuilt below (SQLite cannot
-- change a CHECK constraint in place), and they name it.
DROP TRIGGER job_events_on_insert;
DROP TRIGGER job_events_on_update;
DROP TRIGGER job_events_on_delete;

CREATE TABLE job_events_new (
    project_id   TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    job_id       TEXT NOT NULL,
    snapshot_id  TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('created', 'submitted', 'running', 'succeeded', 'failed', 'cancelled', 'retry_scheduled', 'removed', 'estimate_changed')),
    state        TEXT NOT NULL,
    backup_id    TEXT,
    error        TEXT,              -- JSON problem object
    next_attempt_at INTEGER,
    occurred_at  INTEGER NOT NULL,
    expected_completion_at INTEGER,
    PRIMARY KEY (project_id, seq)
) WITHOUT ROWID;
INSERT INTO job_events_new (project_id, seq, job_id, snapshot_id, kind, state, backup_id, error, next_attempt_at, occurred_at)
    SELECT project_id, seq, job_id, snapshot_id, kind, state, backup_id, error, next_attempt_at, occurred_at FROM job_events;
DROP TABLE job_events;
ALTER TABLE job_events_new RENAME TO job_events;
CREATE INDEX job_events_by_age ON job_events (occurred_at);

CREATE TRIGGER job_events_on_insert AFTER INSERT ON jobs
BEGIN
    INSERT INTO job_event_counters (project_id, last_seq)
        VALUES (NEW.project_id, 1)
        ON CONFLICT (project_id) DO UPDATE SET last_seq = last_seq + 1;
    INSERT INTO job_events (project_id, seq, job_id, snapshot_id, kind, state, backup_id, error, next_attempt_at, occurred_at, expected_completion_at)
        SELECT NEW.project_id, last_seq, NEW.id, NEW.snapshot_id, 'created', NEW.state, NEW.backup_id, NEW.error, NEW.next_attempt_at, NEW.created_at, NEW.expected_completion_at
        FROM job_event_counters WHERE project_id = NEW.project_id;
    -- Recorded already claimed for its first POST (the create does so).
    UPDATE job_event_counters SET last_seq = last_seq + 1
        WHERE project_id = NEW.project_id AND NEW.posted_at IS NOT NULL;
    INSERT INTO job_events (project_id, seq, job_id, snapshot_id, kind, state, backup_id, error, next_attempt_at, occurred_at, expected_completion_at)
        SELECT NEW.project_id, last_seq, NEW.id, NEW.snapshot_id, 'submitted', NEW.state, NEW.backup_id, NEW.error, NEW.next_attempt_at, NEW.posted_at, NEW.expected_completion_at
        FROM job_event_counters WHERE project_id = NEW.project_id AND NEW.posted_at IS NOT NULL;
END;

-- An update is an event when the state changed, when a POST is being made
-- (a claim counts an attempt), when a queued job was written again with a
-- reason (a retry), or when a running job's expected completion changed.
-- Other writes (the job shown, a POST found to have made nothing) are not.
CREATE TRIGGER job_events_on_update AFTER UPDATE ON jobs
WHEN NEW.state IS NOT OLD.state
    OR (NEW.attempts > OLD.attempts AND NEW.posted_at IS NOT NULL)
    OR (NEW.state = 'queued' AND NEW.error IS NOT NULL AND NEW.version IS NOT OLD.version)
    OR (NEW.state = 'running' AND NEW.expected_completion_at IS NOT OLD.expected_completion_at)
BEGIN
    INSERT INTO job_event_counters (project_id, last_seq)
        VALUES (NEW.project_id, 1)
        ON CONFLICT (project_id) DO UPDATE SET last_seq = last_seq + 1;
    INSERT INTO job_events (project_id, seq, job_id, snapshot_id, kind, state, backup_id, error, next_attempt_at, occurred_at, expected_completion_at)
        SELECT NEW.project_id, last_seq, NEW.id, NEW.snapshot_id,
            CASE
                WHEN NEW.state IS NOT OLD.state THEN NEW.state
                WHEN NEW.attempts > OLD.attempts AND NEW.posted_at IS NOT NULL THEN 'submitted'
                WHEN NEW.state = 'running' THEN 'estimate_changed'
                ELSE 'retry_scheduled'
            END,
            NEW.state, NEW.backup_id, NEW.error, NEW.next_attempt_at, NEW.updated_at, NEW.expected_completion_at
        FROM job_event_counters WHERE project_id = NEW.project_id;
END;

-- A job is deleted unfinished only when Cinder refused its request while
-- the caller waited; finished jobs deleted by retention are not events.
CREATE TRIGGER job_events_on_delete AFTER DELETE ON jobs
WHEN OLD.state IN ('queued', 'running')
BEGIN
    INSERT INTO job_event_counters (project_id, last_seq)
        VALUES (OLD.project_id, 1)
        ON CONFLICT (project_id) DO UPDATE SET last_seq = last_seq + 1;
    INSERT INTO job_events (project_id, seq, job_id, snapshot_id, kind, state, backup_id, error, next_attempt_at, occurred_at)
        SELECT OLD.project_id, last_seq, OLD.id, OLD.snapshot_id, 'removed', OLD.state, OLD.backup_id, OLD.error, NULL,
            CAST(unixepoch('subsec') * 1000 AS INTEGER)
        FROM job_event_counters WHERE project_id = OLD.project_id;
END;

-- How far a tenant's events may have been purged: every number up to it
-- may be gone (the purge goes by age, and ages need not follow numbers,
-- since they come from several replicas' clocks). A client resuming after
-- an event below it may have missed some: it is told so (410), never
-- given a stream with a gap. Set by the purge, in its own transaction.
ALTER TABLE job_event_counters ADD COLUMN purged_through INTEGER NOT NULL DEFAULT 0;

-- Events purged before this column existed: the highest number missing
-- below a kept event, or the latest when it is gone itself.
UPDATE job_event_counters SET purged_through = COALESCE(
    (SELECT MAX(e.seq) - 1 FROM job_events e
        WHERE e.project_id = job_event_counters.project_id AND e.seq > 1
        AND NOT EXISTS (SELECT 1 FROM job_events p
            WHERE p.project_id = e.project_id AND p.seq = e.seq - 1)),
    0);
UPDATE job_event_counters SET purged_through = last_seq
    WHERE NOT EXISTS (SELECT 1 FROM job_events e
        WHERE e.project_id = job_event_counters.project_id AND e.seq = job_event_counters.last_seq);
