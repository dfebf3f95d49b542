//! PostgreSQL job store: the store several replicas share.
//!
//! The same rules as the SQLite store, in PostgreSQL's types (UUID ids,
//! `timestamptz` times, JSONB options and errors). Lease times are taken on
//! the database's clock, so replicas with skewed clocks still agree on who
//! holds a tenant. Job changes are announced with `NOTIFY` (a trigger on
//! `jobs`), which [`JobStore::watch_changes`] forwards to long polls.

mod webhooks;

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{
    Connection, FromRow, PgPool, Row,
    postgres::{PgConnectOptions, PgListener, PgPoolOptions},
    types::Json,
};
use uuid::Uuid;

use super::{
    ActiveJobs, ChangeListener, Error, Fence, HeldLease, IdempotencyRecord, JobChange, JobFilter,
    JobStore, KeyUse, Reservation, TenantKey, duration_ms, held_leases, migrator, readable_events,
    readable_jobs,
};
use crate::jobs::events::{EventFilter, EventRange, JobEvent};
use crate::jobs::model::{Job, JobId, JobState};

/// Where every change of a job is announced as `<job id> <project id>`
/// (the `events_and_estimates` migration; `backup_gateway_job_changes` carries
/// the job id alone, for replicas of earlier versions).
const CHANGES_CHANNEL: &str = "backup_gateway_tenant_job_changes";

/// The PostgreSQL store.
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    options: PgConnectOptions,
    /// Dropped with the last copy of the store: ends the task that listens
    /// for job changes.
    _alive: Arc<tokio::sync::watch::Sender<()>>,
    alive: tokio::sync::watch::Receiver<()>,
}

impl PostgresStore {
    /// Connects (TLS as the URL's `sslmode` asks, with rustls) and migrates.
    pub async fn connect(url: &str, pool_size: u32) -> anyhow::Result<Self> {
        let options: PgConnectOptions = url.parse()?;
        // One connection first: its error says what is wrong (refused,
        // unknown database, password), where the pool's would only say
        // that it timed out.
        let first = sqlx::PgConnection::connect_with(&options)
            .await
            .map_err(|e| match e.as_database_error() {
                Some(db) => anyhow::anyhow!("{}", db.message()),
                None => anyhow::Error::new(e),
            })?;
        let _ = first.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(pool_size.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await?;
        // Several replicas starting at once: the migrator serialises them
        // with an advisory lock.
        migrator!("./migrations/postgres").run(&pool).await?;
        let (alive_tx, alive) = tokio::sync::watch::channel(());
        Ok(PostgresStore {
            pool,
            options,
            _alive: Arc::new(alive_tx),
            alive,
        })
    }
}

/// Subscribes to the job-change channel on a connection of its own (never
/// one of the pool's, which queries need).
async fn subscribe(options: &PgConnectOptions) -> Result<PgListener, sqlx::Error> {
    let own = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .connect_lazy_with(options.clone());
    let mut subscription = PgListener::connect_with(&own).await?;
    subscription.listen(CHANGES_CHANNEL).await?;
    Ok(subscription)
}

/// Forwards job changes to `listener` until the store is dropped. Each
/// time the subscription is (re)made, every waiter is woken: changes made
/// while there was none were not announced.
async fn forward_changes(options: PgConnectOptions, listener: ChangeListener) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let mut subscription = match subscribe(&options).await {
            Ok(subscription) => subscription,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for job changes; retrying (long polls see other replicas' changes when they time out)");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        listener(None);
        loop {
            match subscription.try_recv().await {
                Ok(Some(note)) => listener(JobChange::parse(note.payload())),
                // The connection was lost: subscribe again (and wake all).
                Ok(None) => {
                    tracing::warn!("lost the job-change subscription; subscribing again");
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the job-change subscription failed; subscribing again");
                    break;
                }
            }
        }
        tokio::time::sleep(backoff).await;
    }
}

/// The columns of a job, in [`JobRow`]'s order (a macro so that statements
/// stay `&'static str` literals).
macro_rules! columns {
    () => {
        "id, project_id, cloud, snapshot_id, volume_id, backup_id, options, state, error, \
         attempts, next_attempt_at, upstream_request_id, created_at, updated_at, started_at, finished_at, \
         posted_at, version, shown, size_gib, expected_completion_at"
    };
}

#[derive(FromRow)]
struct JobRow {
    id: Uuid,
    project_id: String,
    cloud: String,
    snapshot_id: String,
    volume_id: String,
    backup_id: Option<String>,
    // Decoded as plain JSON, then read in `TryFrom`: a value of the wrong
    // shape makes that one row unreadable instead of failing the query.
    options: serde_json::Value,
    state: String,
    error: Option<serde_json::Value>,
    attempts: i32,
    next_attempt_at: Option<DateTime<Utc>>,
    upstream_request_id: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    posted_at: Option<DateTime<Utc>>,
    version: i64,
    shown: bool,
    size_gib: Option<i64>,
    expected_completion_at: Option<DateTime<Utc>>,
}

#[derive(FromRow)]
struct EventRow {
    seq: i64,
    kind: String,
    job_id: Uuid,
    snapshot_id: String,
    state: String,
    backup_id: Option<String>,
    error: Option<serde_json::Value>,
    next_attempt_at: Option<DateTime<Utc>>,
    occurred_at: DateTime<Utc>,
    expected_completion_at: Option<DateTime<Utc>>,
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
            job_id: JobId(row.job_id),
            state: row.state.parse().map_err(|e| corrupt("state", &e))?,
            error: row
                .error
                .map(serde_json::from_value)
                .transpose()
                .map_err(|e| corrupt("error", &e))?,
            next_attempt_at: row.next_attempt_at,
            occurred_at: row.occurred_at,
            expected_completion_at: row.expected_completion_at,
            snapshot_id: row.snapshot_id,
            backup_id: row.backup_id,
        })
    }
}

impl TryFrom<JobRow> for Job {
    type Error = Error;

    fn try_from(row: JobRow) -> Result<Self, Error> {
        let corrupt = |what: &str, e: &dyn std::fmt::Display| {
            Error::Corrupt(format!("job {}: {what}: {e}", row.id))
        };
        Ok(Job {
            id: JobId(row.id),
            options: serde_json::from_value(row.options).map_err(|e| corrupt("options", &e))?,
            state: row.state.parse().map_err(|e| corrupt("state", &e))?,
            error: row
                .error
                .map(serde_json::from_value)
                .transpose()
                .map_err(|e| corrupt("error", &e))?,
            attempts: u32::try_from(row.attempts).map_err(|e| corrupt("attempts", &e))?,
            next_attempt_at: row.next_attempt_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
            started_at: row.started_at,
            finished_at: row.finished_at,
            posted_at: row.posted_at,
            version: row.version,
            shown: row.shown,
            size_gib: row.size_gib.and_then(|s| u64::try_from(s).ok()),
            expected_completion_at: row.expected_completion_at,
            project_id: row.project_id,
            cloud: row.cloud,
            snapshot_id: row.snapshot_id,
            volume_id: row.volume_id,
            backup_id: row.backup_id,
            upstream_request_id: row.upstream_request_id,
        })
    }
}

#[derive(FromRow)]
struct KeyRow {
    request: String,
    job_id: Option<Uuid>,
    answered: bool,
    created_at: DateTime<Utc>,
}

impl From<KeyRow> for IdempotencyRecord {
    fn from(row: KeyRow) -> Self {
        IdempotencyRecord {
            request: row.request,
            job_id: row.job_id.map(JobId),
            answered: row.answered,
            created_at: row.created_at,
        }
    }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(e) if e.is_unique_violation())
}

fn i32_attempts(attempts: u32) -> i32 {
    i32::try_from(attempts).unwrap_or(i32::MAX)
}

#[async_trait]
impl JobStore for PostgresStore {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    async fn insert(&self, job: &Job, key: Option<KeyUse<'_>>) -> Result<(), Error> {
        let sql = concat!(
            "INSERT INTO jobs (",
            columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)"
        );
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(sql)
            .bind(job.id.0)
            .bind(&job.project_id)
            .bind(&job.cloud)
            .bind(&job.snapshot_id)
            .bind(&job.volume_id)
            .bind(&job.backup_id)
            .bind(Json(&job.options))
            .bind(job.state.as_str())
            .bind(job.error.as_ref().map(Json))
            .bind(i32_attempts(job.attempts))
            .bind(job.next_attempt_at)
            .bind(&job.upstream_request_id)
            .bind(job.created_at)
            .bind(job.updated_at)
            .bind(job.started_at)
            .bind(job.finished_at)
            .bind(job.posted_at)
            .bind(job.version)
            .bind(job.shown)
            .bind(job.size_gib.and_then(|s| i64::try_from(s).ok()))
            .bind(job.expected_completion_at)
            .execute(&mut *tx)
            .await;
        match inserted {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => return Err(Error::ActiveJobExists),
            Err(e) => return Err(e.into()),
        }
        if let Some(key) = key {
            let bound = sqlx::query(
                "UPDATE idempotency_keys SET job_id = $1 \
                 WHERE project_id = $2 AND key = $3 AND job_id IS NULL AND created_at = $4",
            )
            .bind(job.id.0)
            .bind(key.project_id)
            .bind(key.key)
            .bind(key.reserved_at)
            .execute(&mut *tx)
            .await?;
            if bound.rows_affected() != 1 {
                return Err(Error::KeyLost);
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn get(&self, id: JobId) -> Result<Option<Job>, Error> {
        let sql = concat!("SELECT ", columns!(), " FROM jobs WHERE id = $1");
        let row: Option<JobRow> = sqlx::query_as(sql)
            .bind(id.0)
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
             WHERE project_id = $1 \
               AND ($2::text IS NULL OR state = $2) \
               AND ($3::text IS NULL OR snapshot_id = $3) \
               AND ($4::text IS NULL OR volume_id = $4) \
               AND ($5::uuid IS NULL OR id < $5) \
             ORDER BY id DESC LIMIT $6"
        );
        let rows: Vec<JobRow> = sqlx::query_as(sql)
            .bind(project_id)
            .bind(filter.state.map(JobState::as_str))
            .bind(&filter.snapshot_id)
            .bind(&filter.volume_id)
            .bind(before.map(|id| id.0))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        Ok(readable_jobs(rows, |row| row.id.to_string()))
    }

    async fn update(&self, job: &Job, fence: Option<&Fence>) -> Result<bool, Error> {
        let result = sqlx::query(
            "UPDATE jobs SET backup_id = $1, state = $2, error = $3, attempts = $4, next_attempt_at = $5, \
                 upstream_request_id = $6, updated_at = $7, started_at = $8, finished_at = $9, \
                 posted_at = $10, expected_completion_at = $15, version = version + 1 \
             WHERE id = $11 AND version = $12 \
               AND ($13::text IS NULL OR EXISTS (SELECT 1 FROM tenant_leases l \
                   WHERE l.cloud = jobs.cloud AND l.project_id = jobs.project_id \
                     AND l.holder = $13 AND l.generation = $14 AND l.expires_at > clock_timestamp() \
                   FOR SHARE OF l))",
        )
        .bind(&job.backup_id)
        .bind(job.state.as_str())
        .bind(job.error.as_ref().map(Json))
        .bind(i32_attempts(job.attempts))
        .bind(job.next_attempt_at)
        .bind(&job.upstream_request_id)
        .bind(job.updated_at)
        .bind(job.started_at)
        .bind(job.finished_at)
        .bind(job.posted_at)
        .bind(job.id.0)
        .bind(job.version)
        .bind(fence.map(|f| f.holder.as_str()))
        .bind(fence.map(|f| f.generation))
        .bind(job.expected_completion_at)
        .execute(&self.pool)
        .await;
        match result {
            Ok(done) => Ok(done.rows_affected() == 1),
            Err(e) if is_unique_violation(&e) => Err(Error::ActiveJobExists),
            Err(e) => Err(e.into()),
        }
    }

    async fn delete(
        &self,
        id: JobId,
        version: i64,
        key: Option<KeyUse<'_>>,
    ) -> Result<bool, Error> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("DELETE FROM jobs WHERE id = $1 AND version = $2 AND NOT shown")
            .bind(id.0)
            .bind(version)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        if let Some(key) = key {
            sqlx::query(
                "DELETE FROM idempotency_keys WHERE project_id = $1 AND key = $2 AND job_id = $3",
            )
            .bind(key.project_id)
            .bind(key.key)
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn mark_shown(&self, id: JobId) -> Result<(), Error> {
        sqlx::query("UPDATE jobs SET shown = TRUE WHERE id = $1 AND NOT shown")
            .bind(id.0)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn active(&self) -> Result<ActiveJobs, Error> {
        let sql = concat!(
            "SELECT ",
            columns!(),
            " FROM jobs WHERE state IN ('queued', 'running') ORDER BY id"
        );
        let rows = sqlx::query(sql).fetch_all(&self.pool).await?;
        let mut active = ActiveJobs::default();
        for row in rows {
            let id = row
                .try_get::<Uuid, _>("id")
                .map(|id| id.to_string())
                .unwrap_or_default();
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
            " FROM jobs WHERE project_id = $1 AND snapshot_id = $2 AND state IN ('queued', 'running')"
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
        // Inserted, or the existing row: `ON CONFLICT DO NOTHING` returns
        // nothing for a taken key, so the row is read in the same statement.
        loop {
            let inserted = sqlx::query(
                "INSERT INTO idempotency_keys (project_id, key, request, created_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (project_id, key) DO NOTHING",
            )
            .bind(key.project_id)
            .bind(key.key)
            .bind(request)
            .bind(now)
            .execute(&self.pool)
            .await?;
            if inserted.rows_affected() == 1 {
                return Ok(Reservation::Reserved);
            }
            let row: Option<KeyRow> = sqlx::query_as(
                "SELECT request, job_id, answered, created_at FROM idempotency_keys \
                 WHERE project_id = $1 AND key = $2",
            )
            .bind(key.project_id)
            .bind(key.key)
            .fetch_optional(&self.pool)
            .await?;
            // None: purged between the two statements, as good as free.
            if let Some(row) = row {
                return Ok(Reservation::Existing(row.into()));
            }
        }
    }

    async fn take_over_key(
        &self,
        key: KeyUse<'_>,
        created_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let done = sqlx::query(
            "UPDATE idempotency_keys SET created_at = $1 \
             WHERE project_id = $2 AND key = $3 AND job_id IS NULL AND created_at = $4",
        )
        .bind(now)
        .bind(key.project_id)
        .bind(key.key)
        .bind(created_at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn mark_key_answered(&self, key: KeyUse<'_>) -> Result<(), Error> {
        sqlx::query(
            "UPDATE idempotency_keys SET answered = TRUE WHERE project_id = $1 AND key = $2",
        )
        .bind(key.project_id)
        .bind(key.key)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn release_key(&self, key: KeyUse<'_>) -> Result<(), Error> {
        sqlx::query(
            "DELETE FROM idempotency_keys \
             WHERE project_id = $1 AND key = $2 AND job_id IS NULL AND created_at = $3",
        )
        .bind(key.project_id)
        .bind(key.key)
        .bind(key.reserved_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn purge_finished(&self, before: DateTime<Utc>, batch: u32) -> Result<u64, Error> {
        let done = sqlx::query(
            "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs \
                 WHERE state IN ('succeeded', 'failed', 'cancelled') AND finished_at < $1 \
                 LIMIT $2 FOR UPDATE SKIP LOCKED)",
        )
        .bind(before)
        .bind(i64::from(batch))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn purge_keys(&self, before: DateTime<Utc>, batch: u32) -> Result<u64, Error> {
        let done = sqlx::query(
            "DELETE FROM idempotency_keys WHERE (project_id, key) IN \
                 (SELECT project_id, key FROM idempotency_keys WHERE created_at < $1 \
                  LIMIT $2 FOR UPDATE SKIP LOCKED)",
        )
        .bind(before)
        .bind(i64::from(batch))
        .execute(&self.pool)
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
             FROM job_events WHERE project_id = $1 AND seq > $2 \
             AND ($3::uuid IS NULL OR job_id = $3) AND ($4::text IS NULL OR snapshot_id = $4) \
             ORDER BY seq LIMIT $5",
        )
        .bind(project_id)
        .bind(after)
        .bind(filter.job_id.map(|id| id.0))
        .bind(filter.snapshot_id.as_deref())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(readable_events(rows, |row| row.seq))
    }

    async fn event_range(&self, project_id: &str) -> Result<EventRange, Error> {
        let range: Option<(i64, i64)> = sqlx::query_as(
            "SELECT last_seq, purged_through FROM job_event_counters WHERE project_id = $1",
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
        let purged: i64 = sqlx::query_scalar(
            "WITH gone AS ( \
                 DELETE FROM job_events WHERE (project_id, seq) IN \
                     (SELECT project_id, seq FROM job_events WHERE occurred_at < $1 \
                      LIMIT $2 FOR UPDATE SKIP LOCKED) \
                 RETURNING project_id, seq), \
             edges AS ( \
                 UPDATE job_event_counters c SET purged_through = GREATEST(c.purged_through, g.last) \
                 FROM (SELECT project_id, MAX(seq) AS last FROM gone GROUP BY project_id) g \
                 WHERE c.project_id = g.project_id) \
             SELECT COUNT(*) FROM gone",
        )
        .bind(before)
        .bind(i64::from(batch))
        .fetch_one(&self.pool)
        .await?;
        Ok(u64::try_from(purged).unwrap_or_default())
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
        // Taken when free, expired or held under this holder's name (by an
        // earlier life of it); every taking is a new tenure with the next
        // generation, so an earlier tenure's writes are refused. The upsert
        // locks the row, so two replicas racing have one winner.
        let generation: Option<i64> = sqlx::query_scalar(
            "INSERT INTO tenant_leases (cloud, project_id, holder, generation, expires_at) \
             VALUES ($1, $2, $3, 1, clock_timestamp() + $4 * interval '1 millisecond') \
             ON CONFLICT (cloud, project_id) DO UPDATE SET \
                 generation = tenant_leases.generation + 1, \
                 holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE tenant_leases.holder = excluded.holder OR tenant_leases.expires_at <= clock_timestamp() \
             RETURNING generation",
        )
        .bind(&tenant.cloud)
        .bind(&tenant.project_id)
        .bind(holder)
        .bind(duration_ms(ttl))
        .fetch_optional(&self.pool)
        .await?;
        Ok(generation)
    }

    async fn renew_leases(&self, holder: &str, ttl: Duration) -> Result<Vec<HeldLease>, Error> {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "UPDATE tenant_leases SET expires_at = clock_timestamp() + $1 * interval '1 millisecond' \
             WHERE holder = $2 AND expires_at > clock_timestamp() \
             RETURNING cloud, project_id, generation",
        )
        .bind(duration_ms(ttl))
        .bind(holder)
        .fetch_all(&self.pool)
        .await?;
        Ok(held_leases(rows))
    }

    async fn release_lease(&self, tenant: &TenantKey, holder: &str) -> Result<(), Error> {
        // Expired rather than deleted: the next holder gets the next
        // generation, so generations never repeat.
        sqlx::query(
            "UPDATE tenant_leases SET expires_at = '-infinity' \
             WHERE cloud = $1 AND project_id = $2 AND holder = $3",
        )
        .bind(&tenant.cloud)
        .bind(&tenant.project_id)
        .bind(holder)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn heartbeat(&self, replica: &str, ttl: Duration) -> Result<u32, Error> {
        sqlx::query(
            "INSERT INTO gateway_replicas (id, started_at, seen_at) \
             VALUES ($1, clock_timestamp(), clock_timestamp()) \
             ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at",
        )
        .bind(replica)
        .execute(&self.pool)
        .await?;
        // Replicas gone for ten lease times are forgotten.
        sqlx::query(
            "DELETE FROM gateway_replicas \
             WHERE seen_at < clock_timestamp() - 10 * $1 * interval '1 millisecond'",
        )
        .bind(duration_ms(ttl))
        .execute(&self.pool)
        .await?;
        let live: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM gateway_replicas \
             WHERE seen_at >= clock_timestamp() - $1 * interval '1 millisecond'",
        )
        .bind(duration_ms(ttl))
        .fetch_one(&self.pool)
        .await?;
        Ok(u32::try_from(live).unwrap_or(u32::MAX).max(1))
    }

    async fn leave(&self, replica: &str) -> Result<(), Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE tenant_leases SET expires_at = '-infinity' WHERE holder = $1")
            .bind(replica)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM gateway_replicas WHERE id = $1")
            .bind(replica)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    fn webhooks(&self) -> &dyn super::WebhookStore {
        self
    }

    fn watch_changes(&self, listener: ChangeListener) {
        let options = self.options.clone();
        let mut alive = self.alive.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = forward_changes(options, listener) => {}
                // Every copy of the store is gone.
                _ = alive.changed() => {}
            }
        });
    }
}
