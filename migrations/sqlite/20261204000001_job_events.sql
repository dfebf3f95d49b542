-- Job events: every change of a job a caller may want pushed (over
-- `GET /events`, and to webhooks), one row each, written by the triggers
-- below in the same transaction as the change itself. Numbered per tenant
-- (`seq` 1, 2, 3, ...): a client resuming after event N asks for the rows
-- of its tenant with a greater `seq`. Times are milliseconds since the
-- epoch (UTC), as in `jobs`.
--
-- Kinds: `created` (recorded), `submitted` (a POST to Cinder is being
-- made), `running` (Cinder has the backup), `succeeded`, `failed`,
-- `cancelled`, `retry_scheduled` (queued again, with the reason and the
-- time of the next attempt), and `removed` (Cinder refused the request
-- while its caller waited: the caller got the refusal and the job is gone).
CREATE TABLE job_events (
    project_id   TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    job_id       TEXT NOT NULL,
    snapshot_id  TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('created', 'submitted', 'running', 'succeeded', 'failed', 'cancelled', 'retry_scheduled', 'removed')),
    state        TEXT NOT NULL,
    backup_id    TEXT,
    error        TEXT,              -- JSON problem object
    next_attempt_at INTEGER,
    occurred_at  INTEGER NOT NULL,
    PRIMARY KEY (project_id, seq)
) WITHOUT ROWID;

-- Retention: events by age.
CREATE INDEX job_events_by_age ON job_events (occurred_at);

-- The last event number of each tenant. Kept when the events themselves
-- are purged, so that numbers never repeat.
CREATE TABLE job_event_counters (
    project_id  TEXT PRIMARY KEY NOT NULL,
    last_seq    INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TRIGGER job_events_on_insert AFTER INSERT ON jobs
BEGIN
    INSERT INTO job_event_counters (project_id, last_seq)
        VALUES (NEW.project_id, 1)
        ON CONFLICT (project_id) DO UPDATE SET last_seq = last_seq + 1;
    INSERT INTO job_events (project_id, seq, job_id, snapshot_id, kind, state, backup_id, error, next_attempt_at, occurred_at)
        SELECT NEW.project_id, last_seq, NEW.id, NEW.snapshot_id, 'created', NEW.state, NEW.backup_id, NEW.error, NEW.next_attempt_at, NEW.created_at
        FROM job_event_counters WHERE project_id = NEW.project_id;
    -- Recorded already claimed for its first POST (the create does so).
    UPDATE job_event_counters SET last_seq = last_seq + 1
        WHERE project_id = NEW.project_id AND NEW.posted_at IS NOT NULL;
    INSERT INTO job_events (project_id, seq, job_id, snapshot_id, kind, state, backup_id, error, next_attempt_at, occurred_at)
        SELECT NEW.project_id, last_seq, NEW.id, NEW.snapshot_id, 'submitted', NEW.state, NEW.backup_id, NEW.error, NEW.next_attempt_at, NEW.posted_at
        FROM job_event_counters WHERE project_id = NEW.project_id AND NEW.posted_at IS NOT NULL;
END;

-- An update is an event when the state changed, when a POST is being made
-- (a claim counts an attempt), or when a queued job was given a new time
-- for its next attempt with a reason. Other writes (the job shown, a POST
-- found to have made nothing) are not.
CREATE TRIGGER job_events_on_update AFTER UPDATE ON jobs
WHEN NEW.state IS NOT OLD.state
    OR (NEW.attempts > OLD.attempts AND NEW.posted_at IS NOT NULL)
    OR (NEW.state = 'queued' AND NEW.error IS NOT NULL
        AND NEW.next_attempt_at IS NOT OLD.next_attempt_at)
BEGIN
    INSERT INTO job_event_counters (project_id, last_seq)
        VALUES (NEW.project_id, 1)
        ON CONFLICT (project_id) DO UPDATE SET last_seq = last_seq + 1;
    INSERT INTO job_events (project_id, seq, job_id, snapshot_id, kind, state, backup_id, error, next_attempt_at, occurred_at)
        SELECT NEW.project_id, last_seq, NEW.id, NEW.snapshot_id,
            CASE
                WHEN NEW.state IS NOT OLD.state THEN NEW.state
                WHEN NEW.attempts > OLD.attempts AND NEW.posted_at IS NOT NULL THEN 'submitted'
                ELSE 'retry_scheduled'
            END,
            NEW.state, NEW.backup_id, NEW.error, NEW.next_attempt_at, NEW.updated_at
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
