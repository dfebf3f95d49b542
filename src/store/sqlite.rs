//! SQLite job store (the embedded default).
//!
//! WAL with `synchronous=NORMAL` keeps committed jobs across a killed
//! process. Writes go through one connection of their own, so they queue
//! in its pool rather than in SQLite's busy handler; a transaction that
//! writes starts `IMMEDIATE`, so none can fail upgrading a read lock. A
//! task checkpoints the WAL between writes. A SQLite file belongs to one
//! process, which keeps its jobs in memory (see `cached`).

mod webhooks;

use std::{
    str::FromStr,
    sync::{Arc, Weak},
    time::Duration,
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use sqlx::{
    FromRow, Row, SqlitePool,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

use super::{
    ActiveJobs, ChangeListener, Error, Fence, HeldLease, IdempotencyRecord, JobFilter, JobStore,
    KeyUse, Reservation, TenantKey, duration_ms, held_leases, migrator, readable_events,
    readable_jobs,
};
use crate::jobs::events::{EventFilter, EventRange, JobEvent};
use crate::jobs::model::{Job, JobId, JobState};

/// How often the WAL is checkpointed.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// The SQLite store.
#[derive(Clone)]
pub struct SqliteStore {
    /// Reads, several at once (WAL readers never wait for the writer).
    pool: SqlitePool,
    /// Writes, one connection: SQLite has one writer at a time, and
    /// writers racing for its lock wait in its busy handler, which sleeps
    /// a millisecond and more between tries. Queued here instead, each
    /// write starts the moment the previous one ends.
    writer: SqlitePool,
    /// Held by every clone: the checkpointer stops once all are gone.
    _alive: Arc<()>,
}

impl SqliteStore {
    /// Opens (creating the file and its folder if needed) and migrates.
    pub async fn connect(url: &str, pool_size: u32) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            // No checkpoint inside a job write: it would copy the WAL into
            // the database and sync it in the middle of a create (the
            // slowest creates were those). A task of the store checkpoints
            // between writes instead (see `spawn_checkpointer`).
            .pragma("wal_autocheckpoint", "0");
        if let Some(parent) = options.get_filename().parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)?;
        }
        // A connection to a local file does not go stale: no ping (a round
        // trip to the connection's thread) before each use.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await?;
        migrator!("./migrations/sqlite").run(&writer).await?;
        // Two readers open from the start (with the job view in memory,
        // reads are few: listings, metrics): each is a thread with its own
        // page cache, and one opened at the first concurrent read made the
        // process grow minutes after start.
        let pool = SqlitePoolOptions::new()
            .max_connections(pool_size.max(1))
            .min_connections(pool_size.clamp(1, 2))
            .test_before_acquire(false)
            .connect_with(options)
            .await?;
        let alive = Arc::new(());
        spawn_checkpointer(writer.clone(), Arc::downgrade(&alive));
        Ok(SqliteStore {
            pool,
            writer,
            _alive: alive,
        })
    }
}

/// Checkpoints the WAL every [`CHECKPOINT_EVERY`], until every clone of
/// the store is gone. On the writing connection, queued between two
/// writes: a checkpoint beside a stream of writes never catches up with
/// them, and the WAL then grows without end. `TRUNCATE` copies every page
/// back and empties the WAL file.
fn spawn_checkpointer(writer: SqlitePool, alive: Weak<()>) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(CHECKPOINT_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if alive.upgrade().is_none() {
                break;
            }
            // One row: busy (1 when a reader kept it from completing), the
            // WAL's frames, and the frames copied back.
            match sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(TRUNCATE)")
                .fetch_one(&writer)
                .await
            {
                Ok((0, _, _)) => {}
                Ok((_, frames, copied)) => {
                    tracing::warn!(
                        frames,
                        copied,
                        "the SQLite WAL checkpoint could not complete (a reader held it); will retry"
                    );
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not checkpoint the SQLite WAL; will retry");
                }
            }
        }
        writer.close().await;
    });
}

/// The columns of a job, in [`JobRow`]'s order. A macro, not a `const`, so
/// that the statements stay `&'static str` literals (sqlx refuses SQL built
/// at run time unless it is marked as audited).
macro_rules! columns {
    () => {
        "id, project_id, cloud, snapshot_id, volume_id, backup_id, options, state, error, \
         attempts, next_attempt_at, upstream_request_id, created_at, updated_at, started_at, finished_at, \
         posted_at, version, shown, size_gib, expected_completion_at"
    };
}

#[derive(FromRow)]
struct JobRow {
    id: String,
    project_id: String,
    cloud: String,
    snapshot_id: String,
    volume_id: String,
    backup_id: Option<String>,
    options: String,
    state: String,
    error: Option<String>,
    attempts: i64,
    next_attempt_at: Option<i64>,
    upstream_request_id: Option<String>,
    created_at: i64,
    updated_at: i64,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    posted_at: Option<i64>,
    version: i64,
    shown: i64,
    size_gib: Option<i64>,
    expected_completion_at: Option<i64>,
}

fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// `ttl` after `at`, in milliseconds (saturating).
fn expiry(at: DateTime<Utc>, ttl: Duration) -> i64 {
    millis(at).saturating_add(duration_ms(ttl))
}

fn time(ms: i64) -> Result<DateTime<Utc>, Error> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| Error::Corrupt(format!("time {ms}")))
}

impl TryFrom<JobRow> for Job {
    type Error = Error;

    fn try_from(row: JobRow) -> Result<Self, Error> {
        let corrupt = |what: &str, e: &dyn std::fmt::Display| {
            Error::Corrupt(format!("job {}: {what}: {e}", row.id))
        };
        Ok(Job {
            id: row.id.parse().map_err(|e| corrupt("id", &e))?,
            options: serde_json::from_str(&row.options).map_err(|e| corrupt("options", &e))?,
            state: row.state.parse().map_err(|e| corrupt("state", &e))?,
            error: row
                .error
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(|e| corrupt("error", &e))?,
            attempts: u32::try_from(row.attempts).map_err(|e| corrupt("attempts", &e))?,
            next_attempt_at: row.next_attempt_at.map(time).transpose()?,
            created_at: time(row.created_at)?,
            updated_at: time(row.updated_at)?,
            started_at: row.started_at.map(time).transpose()?,
            finished_at: row.finished_at.map(time).transpose()?,
            posted_at: row.posted_at.map(time).transpose()?,
            version: row.version,
            shown: row.shown != 0,
            size_gib: row.size_gib.and_then(|s| u64::try_from(s).ok()),
            expected_completion_at: row.expected_completion_at.map(time).transpose()?,
            project_id: row.project_id,
            cloud: row.cloud,
            snapshot_id: row.snapshot_id,
            volume_id: row.volume_id,
            backup_id: row.backup_id,
            upstream_request_id: row.upstream_request_id,
        })
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    // Serialising these plain structs cannot fail.
    serde_json::to_string(value).unwrap_or_default()
}

#[derive(FromRow)]
struct EventRow {
    seq: i64,
    kind: String,
    job_id: String,
    snapshot_id: String,
    state: String,
    backup_id: Option<String>,
    error: Option<String>,
    next_attempt_at: Option<i64>,
    occurred_at: i64,
    expected_completion_at: Option<i64>,
}

impl TryFrom<EventRow> for JobEvent {
    type Error = Error;

    fn try_from(row: EventRow) -> Result<Self, Error> {
        let corrupt = |what: &str, e: &dyn std::fmt::Display| {
            Error::Corrupt(format!("event {}: {what}: {e}", row.seq))
        };
        Ok(JobEvent {
            seq: row.seq,
            kind: row.kind.parse().map_err(|e| corrupt("kind", &e))?,
            job_id: row.job_id.parse().map_err(|e| corrupt("job id", &e))?,
            state: row.state.parse().map_err(|e| corrupt("state", &e))?,
            error: row
                .error
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(|e| corrupt("error", &e))?,
            next_attempt_at: row.next_attempt_at.map(time).transpose()?,
            occurred_at: time(row.occurred_at)?,
            expected_completion_at: row.expected_completion_at.map(time).transpose()?,
            snapshot_id: row.snapshot_id,
            backup_id: row.backup_id,
        })
    }
}

#[derive(FromRow)]
struct KeyRow {
    request: String,
    job_id: Option<String>,
    answered: i64,
    created_at: i64,
}

impl TryFrom<KeyRow> for IdempotencyRecord {
    type Error = Error;

    fn try_from(row: KeyRow) -> Result<Self, Error> {
        Ok(IdempotencyRecord {
            job_id: row
                .job_id
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(|e| Error::Corrupt(format!("idempotency key job id: {e}")))?,
            answered: row.answered != 0,
            created_at: time(row.created_at)?,
            request: row.request,
        })
    }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(e) if e.is_unique_violation())
}

/// The statement that starts a write transaction: `IMMEDIATE` takes the
/// write lock at once, where a deferred transaction that reads first would
/// fail with `SQLITE_BUSY` when it upgrades, whatever the busy timeout.
const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

/// The compare-and-set write of a job (see [`JobStore::update`]).
fn update_query<'q>(
    job: &'q Job,
    fence: Option<&'q Fence>,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments> {
    sqlx::query(
        "UPDATE jobs SET backup_id = ?1, state = ?2, error = ?3, attempts = ?4, next_attempt_at = ?5, \
             upstream_request_id = ?6, updated_at = ?7, started_at = ?8, finished_at = ?9, \
             posted_at = ?10, expected_completion_at = ?16, version = version + 1 \
         WHERE id = ?11 AND version = ?12 \
           AND (?13 IS NULL OR EXISTS (SELECT 1 FROM tenant_leases l \
               WHERE l.cloud = jobs.cloud AND l.project_id = jobs.project_id \
                 AND l.holder = ?13 AND l.generation = ?14 AND l.expires_at > ?15))",
    )
    .bind(&job.backup_id)
    .bind(job.state.as_str())
    .bind(job.error.as_ref().map(to_json))
    .bind(i64::from(job.attempts))
    .bind(job.next_attempt_at.map(millis))
    .bind(&job.upstream_request_id)
    .bind(millis(job.updated_at))
    .bind(job.started_at.map(millis))
    .bind(job.finished_at.map(millis))
    .bind(job.posted_at.map(millis))
    .bind(job.id.to_string())
    .bind(job.version)
    .bind(fence.map(|f| f.holder.as_str()))
    .bind(fence.map(|f| f.generation))
    .bind(millis(Utc::now()))
    .bind(job.expected_completion_at.map(millis))
}

#[async_trait]
impl JobStore for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    async fn insert(&self, job: &Job, key: Option<KeyUse<'_>>) -> Result<(), Error> {
        let sql = concat!(
            "INSERT INTO jobs (",
            columns!(),
            ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)"
        );
        let insert = sqlx::query(sql)
            .bind(job.id.to_string())
            .bind(&job.project_id)
            .bind(&job.cloud)
            .bind(&job.snapshot_id)
            .bind(&job.volume_id)
            .bind(&job.backup_id)
            .bind(to_json(&job.options))
            .bind(job.state.as_str())
            .bind(job.error.as_ref().map(to_json))
            .bind(i64::from(job.attempts))
            .bind(job.next_attempt_at.map(millis))
            .bind(&job.upstream_request_id)
            .bind(millis(job.created_at))
            .bind(millis(job.updated_at))
            .bind(job.started_at.map(millis))
            .bind(job.finished_at.map(millis))
            .bind(job.posted_at.map(millis))
            .bind(job.version)
            .bind(i64::from(job.shown))
            .bind(job.size_gib.and_then(|s| i64::try_from(s).ok()))
            .bind(job.expected_completion_at.map(millis));
        let inserted = |result: Result<_, sqlx::Error>| match result {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(Error::ActiveJobExists),
            Err(e) => Err(Error::from(e)),
        };
        let Some(key) = key else {
            // One statement is its own transaction: no BEGIN and COMMIT,
            // each a round trip to the connection's thread.
            return inserted(insert.execute(&self.writer).await);
        };
        let mut tx = self.writer.begin_with(BEGIN_WRITE).await?;
        inserted(insert.execute(&mut *tx).await)?;
        let bound = sqlx::query(
            "UPDATE idempotency_keys SET job_id = ?1 \
             WHERE project_id = ?2 AND key = ?3 AND job_id IS NULL AND created_at = ?4",
        )
        .bind(job.id.to_string())
        .bind(key.project_id)
        .bind(key.key)
        .bind(millis(key.reserved_at))
        .execute(&mut *tx)
        .await?;
        if bound.rows_affected() != 1 {
            // Taken over by another request meanwhile: this one must
            // record nothing.
            return Err(Error::KeyLost);
        }
        tx.commit().await?;
        Ok(())
    }

    async fn get(&self, id: JobId) -> Result<Option<Job>, Error> {
        let sql = concat!("SELECT ", columns!(), " FROM jobs WHERE id = ?1");
        let row: Option<JobRow> = sqlx::query_as(sql)
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(Job::try_from).transpose()
    }

    async fn list(
        &self,
        project_id: &str,
        filter: &JobFilter,
        limit: u32,
        before: Option<JobId>,
    ) -> Result<Vec<Job>, Error> {
        let sql = concat!(
            "SELECT ",
            columns!(),
            " FROM jobs \
             WHERE project_id = ?1 \
               AND (?2 IS NULL OR state = ?2) \
               AND (?3 IS NULL OR snapshot_id = ?3) \
               AND (?4 IS NULL OR volume_id = ?4) \
               AND (?5 IS NULL OR id < ?5) \
             ORDER BY id DESC LIMIT ?6"
        );
        let rows: Vec<JobRow> = sqlx::query_as(sql)
            .bind(project_id)
            .bind(filter.state.map(JobState::as_str))
            .bind(&filter.snapshot_id)
            .bind(&filter.volume_id)
            .bind(before.map(|id| id.to_string()))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        Ok(readable_jobs(rows, |row| row.id.clone()))
    }

    async fn update(&self, job: &Job, fence: Option<&Fence>) -> Result<bool, Error> {
        match update_query(job, fence).execute(&self.writer).await {
            Ok(done) => Ok(done.rows_affected() == 1),
            Err(e) if is_unique_violation(&e) => Err(Error::ActiveJobExists),
            Err(e) => Err(e.into()),
        }
    }

    async fn update_all(&self, jobs: &[Job], fence: Option<&Fence>) -> Result<Vec<bool>, Error> {
        let mut tx = self.writer.begin_with(BEGIN_WRITE).await?;
        let mut written = Vec::with_capacity(jobs.len());
        for job in jobs {
            written.push(match update_query(job, fence).execute(&mut *tx).await {
                Ok(done) => done.rows_affected() == 1,
                // The statement failed alone; the others stand.
                Err(e) if is_unique_violation(&e) => false,
                Err(e) => return Err(e.into()),
            });
        }
        tx.commit().await?;
        Ok(written)
    }

    async fn delete(
        &self,
        id: JobId,
        version: i64,
        key: Option<KeyUse<'_>>,
    ) -> Result<bool, Error> {
        let mut tx = self.writer.begin_with(BEGIN_WRITE).await?;
        let done = sqlx::query("DELETE FROM jobs WHERE id = ?1 AND version = ?2 AND shown = 0")
            .bind(id.to_string())
            .bind(version)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        if let Some(key) = key {
            sqlx::query(
                "DELETE FROM idempotency_keys WHERE project_id = ?1 AND key = ?2 AND job_id = ?3",
            )
            .bind(key.project_id)
            .bind(key.key)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn mark_shown(&self, id: JobId) -> Result<(), Error> {
        sqlx::query("UPDATE jobs SET shown = 1 WHERE id = ?1 AND shown = 0")
            .bind(id.to_string())
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn active(&self) -> Result<ActiveJobs, Error> {
        let sql = concat!(
            "SELECT ",
            columns!(),
            " FROM jobs WHERE state IN ('queued', 'running') ORDER BY id"
        );
        // Column by column, so that a row with a bad value is reported and
        // skipped instead of failing the whole scan; row by row, so that
        // the rows of every unfinished job are never held at once (their
        // peak stayed in the process's heap for good).
        let mut rows = sqlx::query(sql).fetch(&self.pool);
        let mut active = ActiveJobs::default();
        while let Some(row) = rows.try_next().await? {
            let id: String = row.try_get("id").unwrap_or_default();
            match JobRow::from_row(&row)
                .map_err(|e| Error::Corrupt(format!("job {id}: {e}")))
                .and_then(Job::try_from)
            {
                Ok(job) => active.jobs.push(Arc::new(job)),
                Err(e) => active.unreadable.push((id, e.to_string())),
            }
        }
        Ok(active)
    }

    async fn active_for_snapshot(
        &self,
        project_id: &str,
        snapshot_id: &str,
    ) -> Result<Option<Job>, Error> {
        let sql = concat!(
            "SELECT ",
            columns!(),
            " FROM jobs WHERE project_id = ?1 AND snapshot_id = ?2 AND state IN ('queued', 'running')"
        );
        let row: Option<JobRow> = sqlx::query_as(sql)
            .bind(project_id)
            .bind(snapshot_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(Job::try_from).transpose()
    }

    async fn reserve_key(
        &self,
        key: KeyUse<'_>,
        request: &str,
        now: DateTime<Utc>,
    ) -> Result<Reservation, Error> {
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (project_id, key, request, created_at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (project_id, key) DO NOTHING",
        )
        .bind(key.project_id)
        .bind(key.key)
        .bind(request)
        .bind(millis(now))
        .execute(&self.writer)
        .await?;
        if inserted.rows_affected() == 1 {
            return Ok(Reservation::Reserved);
        }
        let row: Option<KeyRow> = sqlx::query_as(
            "SELECT request, job_id, answered, created_at FROM idempotency_keys WHERE project_id = ?1 AND key = ?2",
        )
        .bind(key.project_id)
        .bind(key.key)
        .fetch_optional(&self.writer)
        .await?;
        match row {
            Some(row) => Ok(Reservation::Existing(row.try_into()?)),
            // Purged between the two statements: as good as free.
            None => Box::pin(self.reserve_key(key, request, now)).await,
        }
    }

    async fn take_over_key(
        &self,
        key: KeyUse<'_>,
        created_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let done = sqlx::query(
            "UPDATE idempotency_keys SET created_at = ?1 \
             WHERE project_id = ?2 AND key = ?3 AND job_id IS NULL AND created_at = ?4",
        )
        .bind(millis(now))
        .bind(key.project_id)
        .bind(key.key)
        .bind(millis(created_at))
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn mark_key_answered(&self, key: KeyUse<'_>) -> Result<(), Error> {
        sqlx::query("UPDATE idempotency_keys SET answered = 1 WHERE project_id = ?1 AND key = ?2")
            .bind(key.project_id)
            .bind(key.key)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn release_key(&self, key: KeyUse<'_>) -> Result<(), Error> {
        sqlx::query(
            "DELETE FROM idempotency_keys \
             WHERE project_id = ?1 AND key = ?2 AND job_id IS NULL AND created_at = ?3",
        )
        .bind(key.project_id)
        .bind(key.key)
        .bind(millis(key.reserved_at))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn purge_finished(&self, before: DateTime<Utc>, batch: u32) -> Result<u64, Error> {
        let done = sqlx::query(
            "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs \
                 WHERE state IN ('succeeded', 'failed', 'cancelled') AND finished_at < ?1 LIMIT ?2)",
        )
        .bind(millis(before))
        .bind(i64::from(batch))
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected())
    }

    async fn purge_keys(&self, before: DateTime<Utc>, batch: u32) -> Result<u64, Error> {
        let done = sqlx::query(
            "DELETE FROM idempotency_keys WHERE rowid IN (SELECT rowid FROM idempotency_keys \
                 WHERE created_at < ?1 LIMIT ?2)",
        )
        .bind(millis(before))
        .bind(i64::from(batch))
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected())
    }

    async fn events_after(
        &self,
        project_id: &str,
        after: i64,
        filter: &EventFilter,
        limit: u32,
    ) -> Result<Vec<JobEvent>, Error> {
        let rows: Vec<EventRow> = sqlx::query_as(
            "SELECT seq, kind, job_id, snapshot_id, state, backup_id, error, next_attempt_at, occurred_at, expected_completion_at \
             FROM job_events WHERE project_id = ?1 AND seq > ?2 \
             AND (?3 IS NULL OR job_id = ?3) AND (?4 IS NULL OR snapshot_id = ?4) \
             ORDER BY seq LIMIT ?5",
        )
        .bind(project_id)
        .bind(after)
        .bind(filter.job_id.map(|id| id.to_string()))
        .bind(filter.snapshot_id.as_deref())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(readable_events(rows, |row| row.seq))
    }

    async fn event_range(&self, project_id: &str) -> Result<EventRange, Error> {
        let range: Option<(i64, i64)> = sqlx::query_as(
            "SELECT last_seq, purged_through FROM job_event_counters WHERE project_id = ?1",
        )
        .bind(project_id)
        .fetch_optional(&self.pool)
        .await?;
        let (last, purged_through) = range.unwrap_or_default();
        Ok(EventRange {
            last,
            purged_through,
        })
    }

    async fn purge_events(&self, before: DateTime<Utc>, batch: u32) -> Result<u64, Error> {
        // The events go, and their tenants' `purged_through` moves past
        // them, in one transaction: a reader never sees the one without the
        // other.
        let mut tx = self.writer.begin().await?;
        let gone: Vec<(String, i64)> = sqlx::query_as(
            "DELETE FROM job_events WHERE (project_id, seq) IN (SELECT project_id, seq \
                 FROM job_events WHERE occurred_at < ?1 LIMIT ?2) RETURNING project_id, seq",
        )
        .bind(millis(before))
        .bind(i64::from(batch))
        .fetch_all(&mut *tx)
        .await?;
        let mut edges = std::collections::BTreeMap::<&str, i64>::new();
        for (project_id, seq) in &gone {
            let edge = edges.entry(project_id).or_default();
            *edge = (*edge).max(*seq);
        }
        for (project_id, edge) in edges {
            sqlx::query(
                "UPDATE job_event_counters SET purged_through = MAX(purged_through, ?2) \
                 WHERE project_id = ?1",
            )
            .bind(project_id)
            .bind(edge)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(gone.len() as u64)
    }

    async fn ping(&self) -> Result<(), Error> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn count_by_state(&self) -> Result<Vec<(String, i64)>, Error> {
        Ok(
            sqlx::query_as("SELECT state, COUNT(*) FROM jobs GROUP BY state ORDER BY state")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn acquire_lease(
        &self,
        tenant: &TenantKey,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<i64>, Error> {
        let now = Utc::now();
        // Taken when free, expired or held under this holder's name (by an
        // earlier life of it); every taking is a new tenure with the next
        // generation, so an earlier tenure's writes are refused.
        let generation: Option<i64> = sqlx::query_scalar(
            "INSERT INTO tenant_leases (cloud, project_id, holder, generation, expires_at) \
             VALUES (?1, ?2, ?3, 1, ?4) \
             ON CONFLICT (cloud, project_id) DO UPDATE SET \
                 generation = tenant_leases.generation + 1, \
                 holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE tenant_leases.holder = excluded.holder OR tenant_leases.expires_at <= ?5 \
             RETURNING generation",
        )
        .bind(&tenant.cloud)
        .bind(&tenant.project_id)
        .bind(holder)
        .bind(expiry(now, ttl))
        .bind(millis(now))
        .fetch_optional(&self.writer)
        .await?;
        Ok(generation)
    }

    async fn renew_leases(&self, holder: &str, ttl: Duration) -> Result<Vec<HeldLease>, Error> {
        let now = Utc::now();
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "UPDATE tenant_leases SET expires_at = ?1 WHERE holder = ?2 AND expires_at > ?3 \
             RETURNING cloud, project_id, generation",
        )
        .bind(expiry(now, ttl))
        .bind(holder)
        .bind(millis(now))
        .fetch_all(&self.writer)
        .await?;
        Ok(held_leases(rows))
    }

    async fn release_lease(&self, tenant: &TenantKey, holder: &str) -> Result<(), Error> {
        // Expired rather than deleted: the next holder gets the next
        // generation, so generations never repeat.
        sqlx::query(
            "UPDATE tenant_leases SET expires_at = 0 \
             WHERE cloud = ?1 AND project_id = ?2 AND holder = ?3",
        )
        .bind(&tenant.cloud)
        .bind(&tenant.project_id)
        .bind(holder)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn heartbeat(&self, replica: &str, ttl: Duration) -> Result<u32, Error> {
        let now = Utc::now();
        let since = millis(now).saturating_sub(duration_ms(ttl));
        sqlx::query(
            "INSERT INTO gateway_replicas (id, started_at, seen_at) VALUES (?1, ?2, ?2) \
             ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at",
        )
        .bind(replica)
        .bind(millis(now))
        .execute(&self.writer)
        .await?;
        // Replicas gone for ten lease times are forgotten.
        sqlx::query("DELETE FROM gateway_replicas WHERE seen_at < ?1")
            .bind(millis(now).saturating_sub(duration_ms(ttl).saturating_mul(10)))
            .execute(&self.writer)
            .await?;
        let live: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM gateway_replicas WHERE seen_at >= ?1")
                .bind(since)
                .fetch_one(&self.writer)
                .await?;
        Ok(u32::try_from(live).unwrap_or(u32::MAX).max(1))
    }

    async fn leave(&self, replica: &str) -> Result<(), Error> {
        let mut tx = self.writer.begin_with(BEGIN_WRITE).await?;
        sqlx::query("UPDATE tenant_leases SET expires_at = 0 WHERE holder = ?1")
            .bind(replica)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM gateway_replicas WHERE id = ?1")
            .bind(replica)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    fn webhooks(&self) -> &dyn super::WebhookStore {
        self
    }

    fn watch_changes(&self, _listener: ChangeListener) {
        // One process per SQLite file: it wakes its own long polls.
    }
}
