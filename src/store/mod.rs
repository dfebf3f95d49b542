//! The job store: one trait, [`JobStore`], and its implementations (SQLite
//! now; PostgreSQL joins behind the same trait). SQL lives in the
//! implementations, business rules in `jobs`.

mod sqlite;

use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;

pub use sqlite::SqliteStore;

/// Opens the store a `--database-url` names and brings its schema up to
/// date. Only `sqlite://` is offered by this version.
pub async fn connect(url: &str) -> anyhow::Result<Arc<dyn JobStore>> {
    match url.split_once(':').map(|(scheme, _)| scheme) {
        Some("sqlite") => {
            let store = SqliteStore::connect(url)
                .await
                .with_context(|| format!("--database-url {url}: cannot open the SQLite store"))?;
            Ok(Arc::new(store))
        }
        Some(scheme) => anyhow::bail!(
            "--database-url: `{scheme}:` stores are not supported by this version; use sqlite://PATH"
        ),
        None => anyhow::bail!(
            "--database-url `{url}` is not a URL such as sqlite://data/backup-gateway.db"
        ),
    }
}

use chrono::{DateTime, Utc};

use crate::jobs::model::{Job, JobId, JobState};

/// What a store can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The tenant already has a queued or running job for this snapshot.
    #[error("a job for this snapshot is already queued or running")]
    ActiveJobExists,
    /// The database failed or could not be reached.
    #[error("job store: {0}")]
    Database(#[from] sqlx::Error),
    /// A row the store cannot read back.
    #[error("job store holds an unreadable row: {0}")]
    Corrupt(String),
    /// The idempotency key this request reserved was taken over by another
    /// request (this one was too slow): it must record nothing.
    #[error("the idempotency key was taken over by another request")]
    KeyLost,
}

/// Filters of a job listing; `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Only jobs of this snapshot.
    pub snapshot_id: Option<String>,
    /// Only jobs of this volume.
    pub volume_id: Option<String>,
}

/// The unfinished jobs, and the rows that could not be read.
#[derive(Debug, Default)]
pub struct ActiveJobs {
    /// Every queued or running job that could be read, oldest first.
    pub jobs: Vec<Job>,
    /// `(id, reason)` of each unfinished row that could not be read: skipped,
    /// so that one bad row never stops the others.
    pub unreadable: Vec<(String, String)>,
}

/// An idempotency key as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct IdempotencyRecord {
    /// The canonical request the key was first used with.
    pub request: String,
    /// The job that request recorded; `None` while it is being recorded.
    pub job_id: Option<JobId>,
    /// True once the first request was answered with its job.
    pub answered: bool,
    /// When the key was first used (or taken over).
    pub created_at: DateTime<Utc>,
}

/// What reserving an idempotency key found.
#[derive(Debug, Clone, PartialEq)]
pub enum Reservation {
    /// The key was free and is now this request's.
    Reserved,
    /// The key was already used.
    Existing(IdempotencyRecord),
}

/// An idempotency key of a tenant, as one request holds it.
#[derive(Debug, Clone, Copy)]
pub struct KeyUse<'a> {
    /// The tenant's project.
    pub project_id: &'a str,
    /// The caller's key.
    pub key: &'a str,
    /// When this request reserved (or took over) the key: a request whose
    /// reservation was taken over since can no longer bind a job to it.
    pub reserved_at: DateTime<Utc>,
}

/// Durable storage of jobs. Every write of a job is compare-and-set on its
/// row version, so that two writers racing (a cancel and a submission, a
/// handler and the worker) have one winner.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Records a new job, and binds `key` (reserved before) to it in the
    /// same transaction. [`Error::ActiveJobExists`] when the snapshot has an
    /// unfinished job of the same tenant.
    async fn insert(&self, job: &Job, key: Option<KeyUse<'_>>) -> Result<(), Error>;
    /// One job by id, whatever its tenant (the caller checks the tenant).
    async fn get(&self, id: JobId) -> Result<Option<Job>, Error>;
    /// A tenant's jobs, newest first, older than `before` when given. Rows
    /// that cannot be read are left out.
    async fn list(
        &self,
        project_id: &str,
        filter: &JobFilter,
        limit: u32,
        before: Option<JobId>,
    ) -> Result<Vec<Job>, Error>;
    /// Writes `job` if its stored version is still `job.version`, storing
    /// `job.version + 1`; false when another writer came first.
    async fn update(&self, job: &Job) -> Result<bool, Error>;
    /// Removes a job still at `version` whose id was never shown (see
    /// [`JobStore::mark_shown`]), and the idempotency key bound to it: a
    /// create Cinder refused while its caller waited leaves nothing behind.
    /// False if the job changed or was shown.
    async fn delete(&self, id: JobId, version: i64, key: Option<KeyUse<'_>>)
    -> Result<bool, Error>;
    /// Records that the job's id was shown to someone other than the request
    /// that created it (a conflict naming it, a listing, a replayed key):
    /// from then on it is never removed.
    async fn mark_shown(&self, id: JobId) -> Result<(), Error>;
    /// Every queued or running job, for the worker.
    async fn active(&self) -> Result<ActiveJobs, Error>;
    /// The tenant's unfinished job of a snapshot, if any.
    async fn active_for_snapshot(
        &self,
        project_id: &str,
        snapshot_id: &str,
    ) -> Result<Option<Job>, Error>;
    /// Reserves `key` for `request`, or says how it is already used.
    async fn reserve_key(
        &self,
        key: KeyUse<'_>,
        request: &str,
        now: DateTime<Utc>,
    ) -> Result<Reservation, Error>;
    /// Takes over a reservation whose request was abandoned (no job bound,
    /// still created at `created_at`); false if someone else did.
    async fn take_over_key(
        &self,
        key: KeyUse<'_>,
        created_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, Error>;
    /// Marks the key's first request answered.
    async fn mark_key_answered(&self, key: KeyUse<'_>) -> Result<(), Error>;
    /// Forgets a key whose request recorded nothing.
    async fn release_key(&self, key: KeyUse<'_>) -> Result<(), Error>;
    /// Deletes up to `batch` jobs finished before `before`; how many.
    async fn purge_finished(&self, before: DateTime<Utc>, batch: u32) -> Result<u64, Error>;
    /// Deletes up to `batch` idempotency keys first used before `before`.
    async fn purge_keys(&self, before: DateTime<Utc>, batch: u32) -> Result<u64, Error>;
    /// Answers when the store is usable (readiness).
    async fn ping(&self) -> Result<(), Error>;
}
