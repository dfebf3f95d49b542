-- A retry is an event whenever one is scheduled: a queued job written
-- again (a new row version) with a reason, apart from a claim for a POST.
-- The first rule compared the time of the next attempt only, and missed a
-- retry after a POST that got no answer: that retry keeps the time the
-- claim had set (the POST's outcome is settled only then).
DROP TRIGGER job_events_on_update;

CREATE TRIGGER job_events_on_update AFTER UPDATE ON jobs
WHEN NEW.state IS NOT OLD.state
    OR (NEW.attempts > OLD.attempts AND NEW.posted_at IS NOT NULL)
    OR (NEW.state = 'queued' AND NEW.error IS NOT NULL AND NEW.version IS NOT OLD.version)
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
