-- A retry is an event whenever one is scheduled: a queued job written
-- again (a new row version) with a reason, apart from a claim for a POST.
-- The first rule compared the time of the next attempt only, and missed a
-- retry after a POST that got no answer: that retry keeps the time the
-- claim had set (the POST's outcome is settled only then).
--
-- Every change is also announced with the job and its tenant (`<job id>
-- <project id>`) on a channel of its own, which this version listens on,
-- so that a replica wakes only that tenant's event streams. The first
-- channel (the job id alone) stays for replicas of the versions before,
-- while a rolling upgrade runs.
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
        END IF;
    ELSIF OLD.state IN ('queued', 'running') THEN
        -- Deleted unfinished: Cinder refused the request while its caller
        -- waited (retention deletes only finished jobs).
        OLD.next_attempt_at := NULL;
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
