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
