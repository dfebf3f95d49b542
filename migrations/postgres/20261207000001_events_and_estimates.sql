-- Events, second version, and the expected completion of running jobs
-- (see the SQLite migration of the same name).
--
-- * A retry is an event whenever one is scheduled: a queued job written
--   again (a new row version) with a reason, apart from a claim for a POST.
-- * A job keeps its snapshot's size (GiB) and, while running, when it is
--   expected to complete; events carry it, and a new estimate of a running
--   job is an event (`estimate_changed`).
ALTER TABLE jobs ADD COLUMN size_gib BIGINT, ADD COLUMN expected_completion_at TIMESTAMPTZ;
ALTER TABLE job_events ADD COLUMN expected_completion_at TIMESTAMPTZ;
ALTER TABLE job_events DROP CONSTRAINT job_events_kind_check;
ALTER TABLE job_events ADD CONSTRAINT job_events_kind_check CHECK (kind IN ('created', 'submitted', 'running', 'succeeded', 'failed', 'cancelled', 'retry_scheduled', 'removed', 'estimate_changed'));

CREATE OR REPLACE FUNCTION backup_gateway_job_event(job jobs, event_kind TEXT, at TIMESTAMPTZ)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    number BIGINT;
BEGIN
    INSERT INTO job_event_counters AS c (project_id, last_seq)
        VALUES (job.project_id, 1)
        ON CONFLICT (project_id) DO UPDATE SET last_seq = c.last_seq + 1
        RETURNING c.last_seq INTO number;
    INSERT INTO job_events (project_id, seq, job_id, snapshot_id, kind, state, backup_id, error, next_attempt_at, occurred_at, expected_completion_at)
        VALUES (job.project_id, number, job.id, job.snapshot_id, event_kind, job.state, job.backup_id, job.error, job.next_attempt_at, at, job.expected_completion_at);
END
$$;

-- * Every change is also announced with the job and its tenant (`<job id>
--   <project id>`) on a channel of its own, which this version listens on,
--   so that a replica wakes only that tenant's event streams. The first
--   channel (the job id alone) stays for replicas of the versions before,
--   while a rolling upgrade runs.
CREATE OR REPLACE FUNCTION backup_gateway_job_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('backup_gateway_job_changes', NEW.id::text);
    PERFORM pg_notify('backup_gateway_tenant_job_changes', NEW.id::text || ' ' || NEW.project_id);
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION backup_gateway_job_events() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM backup_gateway_job_event(NEW, 'created', NEW.created_at);
        IF NEW.posted_at IS NOT NULL THEN
            PERFORM backup_gateway_job_event(NEW, 'submitted', NEW.posted_at);
        END IF;
        -- Announced like an update, so other replicas' event streams wake.
        PERFORM pg_notify('backup_gateway_job_changes', NEW.id::text);
        PERFORM pg_notify('backup_gateway_tenant_job_changes', NEW.id::text || ' ' || NEW.project_id);
    ELSIF TG_OP = 'UPDATE' THEN
        IF NEW.state IS DISTINCT FROM OLD.state THEN
            PERFORM backup_gateway_job_event(NEW, NEW.state, NEW.updated_at);
        ELSIF NEW.attempts > OLD.attempts AND NEW.posted_at IS NOT NULL THEN
            PERFORM backup_gateway_job_event(NEW, 'submitted', NEW.updated_at);
        ELSIF NEW.state = 'queued' AND NEW.error IS NOT NULL
            AND NEW.version IS DISTINCT FROM OLD.version THEN
            PERFORM backup_gateway_job_event(NEW, 'retry_scheduled', NEW.updated_at);
        ELSIF NEW.state = 'running'
            AND NEW.expected_completion_at IS DISTINCT FROM OLD.expected_completion_at THEN
            PERFORM backup_gateway_job_event(NEW, 'estimate_changed', NEW.updated_at);
        END IF;
    ELSIF OLD.state IN ('queued', 'running') THEN
        -- Deleted unfinished: Cinder refused the request while its caller
        -- waited (retention deletes only finished jobs).
        OLD.next_attempt_at := NULL;
        OLD.expected_completion_at := NULL;
        PERFORM backup_gateway_job_event(OLD, 'removed', now());
        PERFORM pg_notify('backup_gateway_job_changes', OLD.id::text);
        PERFORM pg_notify('backup_gateway_tenant_job_changes', OLD.id::text || ' ' || OLD.project_id);
    END IF;
    RETURN NULL;
END
$$;

-- How far a tenant's events may have been purged: every number up to it
-- may be gone (the purge goes by age, and ages need not follow numbers,
-- since they come from several replicas' clocks). A client resuming after
-- an event below it may have missed some: it is told so (410), never
-- given a stream with a gap. Set by the purge, in its own transaction.
ALTER TABLE job_event_counters ADD COLUMN purged_through BIGINT NOT NULL DEFAULT 0;

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
