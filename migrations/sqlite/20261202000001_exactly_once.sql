-- Exactly once under faults: a row version for compare-and-set, the time of
-- a POST that may have reached Cinder, idempotency keys, and an index for
-- purging finished jobs.

-- Every write of a job is compare-and-set on this version, so that a cancel
-- racing a submission (both leave `queued`) has one winner.
ALTER TABLE jobs ADD COLUMN version INTEGER NOT NULL DEFAULT 0;

-- Set (before the call) when a POST of the job may reach Cinder; cleared
-- when Cinder refused it or a complete listing of the volume's backups shows
-- it made nothing. While set, the job is never posted again or failed
-- without such a listing, and it cannot be cancelled.
ALTER TABLE jobs ADD COLUMN posted_at INTEGER;

-- A queued job recorded by an older version may have a POST in flight or
-- lost (that version wrote nothing before posting): list before posting.
UPDATE jobs SET posted_at = updated_at WHERE state = 'queued';

-- 0 while the job's id has been shown to no one but the request that
-- created it: only then may a refusal by Cinder remove the job (its caller
-- gets the refusal instead). Set once a conflict, a listing or a replayed
-- idempotency key shows the id. Jobs of older versions count as shown.
ALTER TABLE jobs ADD COLUMN shown INTEGER NOT NULL DEFAULT 1;

-- Retention: finished jobs by the time they finished.
CREATE INDEX jobs_finished ON jobs (finished_at)
    WHERE state IN ('succeeded', 'failed', 'cancelled');

-- Idempotency-Key of creates, per tenant. `request` is the canonical
-- request (path and body) the key was first used with; `job_id` the job
-- that request recorded (NULL while it is being recorded); `answered` is 1
-- once the first request was answered with that job.
CREATE TABLE idempotency_keys (
    project_id  TEXT NOT NULL,
    key         TEXT NOT NULL,
    request     TEXT NOT NULL,
    job_id      TEXT,
    answered    INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (project_id, key)
);

CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
