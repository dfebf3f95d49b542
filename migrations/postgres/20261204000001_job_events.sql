-- Job events (see the SQLite migration `job_events` for the kinds and the
-- rules): one row per change of a job a caller may want pushed, numbered
-- per tenant, written by a trigger in the transaction of the change. The
-- counter row of a tenant stays locked until that transaction commits, so
-- a tenant's events become visible in the order of their numbers, and a
-- reader never passes a number that a transaction still under way holds.
CREATE TABLE job_events (
    project_id      TEXT NOT NULL,
    seq             BIGINT NOT NULL,
    job_id          UUID NOT NULL,
    snapshot_id     TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('created', 'submitted', 'running', 'succeeded', 'failed', 'cancelled', 'retry_scheduled', 'removed')),
    state           TEXT NOT NULL,
    backup_id       TEXT,
    error           JSONB,
    next_attempt_at TIMESTAMPTZ,
    occurred_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (project_id, seq)
);

CREATE INDEX job_events_by_age ON job_events (occurred_at);

CREATE TABLE job_event_counters (
    project_id  TEXT PRIMARY KEY,
    last_seq    BIGINT NOT NULL
);

CREATE FUNCTION backup_gateway_job_event(job jobs, event_kind TEXT, at TIMESTAMPTZ)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    number BIGINT;
BEGIN
    INSERT INTO job_event_counters AS c (project_id, last_seq)
        VALUES (job.project_id, 1)
        ON CONFLICT (project_id) DO UPDATE SET last_seq = c.last_seq + 1
        RETURNING c.last_seq INTO number;
    INSERT INTO job_events (project_id, seq, job_id, snapshot_id, kind, state, backup_id, error, next_attempt_at, occurred_at)
        VALUES (job.project_id, number, job.id, job.snapshot_id, event_kind, job.state, job.backup_id, job.error, job.next_attempt_at, at);
END
$$;

CREATE FUNCTION backup_gateway_job_events() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM backup_gateway_job_event(NEW, 'created', NEW.created_at);
        IF NEW.posted_at IS NOT NULL THEN
            PERFORM backup_gateway_job_event(NEW, 'submitted', NEW.posted_at);
        END IF;
        -- Announced like an update, so other replicas' event streams wake.
        PERFORM pg_notify('backup_gateway_job_changes', NEW.id::text);
    ELSIF TG_OP = 'UPDATE' THEN
        IF NEW.state IS DISTINCT FROM OLD.state THEN
            PERFORM backup_gateway_job_event(NEW, NEW.state, NEW.updated_at);
        ELSIF NEW.attempts > OLD.attempts AND NEW.posted_at IS NOT NULL THEN
            PERFORM backup_gateway_job_event(NEW, 'submitted', NEW.updated_at);
        ELSIF NEW.state = 'queued' AND NEW.error IS NOT NULL
            AND NEW.next_attempt_at IS DISTINCT FROM OLD.next_attempt_at THEN
            PERFORM backup_gateway_job_event(NEW, 'retry_scheduled', NEW.updated_at);
        END IF;
    ELSIF OLD.state IN ('queued', 'running') THEN
        -- Deleted unfinished: Cinder refused the request while its caller
        -- waited (retention deletes only finished jobs).
        OLD.next_attempt_at := NULL;
        PERFORM backup_gateway_job_event(OLD, 'removed', now());
        PERFORM pg_notify('backup_gateway_job_changes', OLD.id::text);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_events AFTER INSERT OR UPDATE OR DELETE ON jobs
    FOR EACH ROW EXECUTE FUNCTION backup_gateway_job_events();
