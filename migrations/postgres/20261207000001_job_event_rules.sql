-- A retry is an event whenever one is scheduled: a queued job written
-- again (a new row version) with a reason, apart from a claim for a POST.
-- The first rule compared the time of the next attempt only, and missed a
-- retry after a POST that got no answer: that retry keeps the time the
-- claim had set (the POST's outcome is settled only then).
--
-- Announcements of a change name the job and its tenant (`<job id>
-- <project id>`), so that a replica wakes only that tenant's event streams.
-- A replica of an older version reads such a payload as unknown and wakes
-- every waiter; this version reads an older replica's plain job id as a
-- change of an unknown tenant.
CREATE OR REPLACE FUNCTION backup_gateway_job_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('backup_gateway_job_changes', NEW.id::text || ' ' || NEW.project_id);
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
        PERFORM pg_notify('backup_gateway_job_changes', NEW.id::text || ' ' || NEW.project_id);
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
        PERFORM pg_notify('backup_gateway_job_changes', OLD.id::text || ' ' || OLD.project_id);
    END IF;
    RETURN NULL;
END
$$;
