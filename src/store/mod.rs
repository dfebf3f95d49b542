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

/// Durable storage of jobs. Updates are compare-and-set on the state, so
/// that two writers racing (a handler and the worker) have one winner.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Records a new job. [`Error::ActiveJobExists`] when the snapshot has an
    /// unfinished job of the same tenant.
    async fn insert(&self, job: &Job) -> Result<(), Error>;
    /// One job by id, whatever its tenant (the caller checks the tenant).
    async fn get(&self, id: JobId) -> Result<Option<Job>, Error>;
    /// A tenant's jobs, newest first, older than `before` when given.
    async fn list(
        &self,
        project_id: &str,
        filter: &JobFilter,
        limit: u32,
        before: Option<JobId>,
    ) -> Result<Vec<Job>, Error>;
    /// Writes `job` if its stored state is still `expected`; false otherwise.
    async fn update(&self, job: &Job, expected: JobState) -> Result<bool, Error>;
    /// Removes a job still in state `expected` (a create Cinder refused at
    /// once leaves nothing behind); false if it was not.
    async fn delete(&self, id: JobId, expected: JobState) -> Result<bool, Error>;
    /// Every queued or running job, for the worker.
    async fn active(&self) -> Result<Vec<Job>, Error>;
    /// The tenant's unfinished job of a snapshot, if any.
    async fn active_for_snapshot(
        &self,
        project_id: &str,
        snapshot_id: &str,
    ) -> Result<Option<Job>, Error>;
    /// Answers when the store is usable (readiness).
    async fn ping(&self) -> Result<(), Error>;
}
