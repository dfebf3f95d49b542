//! The job store: one trait, [`JobStore`], and its implementations: SQLite
//! (the embedded default, one process) and PostgreSQL (several replicas).
//! SQL lives in the implementations, business rules in `jobs`.

mod cached;
mod postgres;
mod sqlite;
pub mod webhooks;

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};

use crate::jobs::events::{EventFilter, EventRange, JobEvent};
use crate::jobs::model::{Job, JobId, JobState};

pub use cached::CachedStore;
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;
pub use webhooks::{ClaimedBatch, WebhookStore};

/// How to open the store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// `sqlite://PATH` or `postgres://...` (a secret: it may hold a
    /// password).
    pub url: SecretString,
    /// Most connections the store's pool opens.
    pub pool_size: u32,
}

impl StoreOptions {
    /// The store at `url` with the default pool.
    pub fn new(url: &str) -> Self {
        StoreOptions {
            url: SecretString::from(url),
            pool_size: 8,
        }
    }
}

/// The kind of store a `--database-url` names: `sqlite` (`sqlite://PATH`)
/// or `postgres` (`postgres://`, `postgresql://`).
pub fn kind_of(url: &str) -> anyhow::Result<&'static str> {
    match url.split_once(':').map(|(scheme, _)| scheme) {
        Some("sqlite") => Ok("sqlite"),
        Some("postgres" | "postgresql") => Ok("postgres"),
        Some(scheme) => anyhow::bail!(
            "--database-url: `{scheme}:` stores are not supported; use sqlite://PATH or postgres://USER@HOST/DATABASE"
        ),
        None => anyhow::bail!(
            "--database-url `{}` is not a URL such as sqlite://data/backup-gateway.db",
            redact_url(url)
        ),
    }
}

/// Opens the store a `--database-url` names and brings its schema up to
/// date.
pub async fn connect(options: &StoreOptions) -> anyhow::Result<Arc<dyn JobStore>> {
    let url = options.url.expose_secret();
    if kind_of(url)? == "sqlite" {
        let store = SqliteStore::connect(url, options.pool_size)
            .await
            .with_context(|| format!("--database-url {url}: cannot open the SQLite store"))?;
        // One process owns a SQLite file: it may keep its jobs in memory.
        let store = CachedStore::load(store).await.with_context(|| {
            format!("--database-url {url}: cannot read the SQLite store's jobs")
        })?;
        Ok(Arc::new(store))
    } else {
        let store = PostgresStore::connect(url, options.pool_size)
            .await
            .with_context(|| {
                format!(
                    "--database-url {}: cannot open the PostgreSQL store",
                    redact_url(url)
                )
            })?;
        Ok(Arc::new(store))
    }
}

/// A database URL fit for messages: its password, in the authority or as
/// a `password=` parameter, replaced. Errs on the side of hiding: anything
/// between the first `:` after the scheme and the last `@` is taken for a
/// password, even when the URL is malformed.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let rest = match rest.rfind('@') {
        Some(at) => match rest[..at].find(':') {
            Some(colon) => format!("{}:***{}", &rest[..colon], &rest[at..]),
            None => rest.to_owned(),
        },
        None => rest.to_owned(),
    };
    let rest = match rest.split_once('?') {
        Some((path, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|param| match param.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                    _ => param.to_owned(),
                })
                .collect();
            format!("{path}?{}", params.join("&"))
        }
        None => rest,
    };
    format!("{scheme}://{rest}")
}

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
    /// Every queued or running job that could be read, oldest first
    /// (shared: the worker scans them every cycle and copies only what it
    /// changes).
    pub jobs: Vec<Arc<Job>>,
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

/// The lease a worker holds on a tenant, carried by its job writes: a
/// write whose lease has ended (expired, or taken over by another replica)
/// is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The replica holding the lease.
    pub holder: String,
    /// The lease's generation when it was taken.
    pub generation: i64,
}

/// A tenant as leases name it: its clouds.yaml entry and its project.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TenantKey {
    /// The clouds.yaml entry acting for the tenant.
    pub cloud: String,
    /// The Keystone project.
    pub project_id: String,
}

/// A lease held by a replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldLease {
    /// The tenant.
    pub tenant: TenantKey,
    /// Its generation.
    pub generation: i64,
}

/// `d` in whole milliseconds (saturating): how both stores pass a lease's
/// time to live.
fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Leases from `(cloud, project_id, generation)` rows.
fn held_leases(rows: Vec<(String, String, i64)>) -> Vec<HeldLease> {
    rows.into_iter()
        .map(|(cloud, project_id, generation)| HeldLease {
            tenant: TenantKey { cloud, project_id },
            generation,
        })
        .collect()
}

/// The jobs of a listing's rows: a row that cannot be read is left out (and
/// logged), so that one bad row never hides the tenant's other jobs.
fn readable_jobs<R>(rows: Vec<R>, id: impl Fn(&R) -> String) -> Vec<Job>
where
    Job: TryFrom<R, Error = Error>,
{
    rows.into_iter()
        .filter_map(|row| {
            let row_id = id(&row);
            Job::try_from(row)
                .inspect_err(|e| tracing::error!(job_id = %row_id, error = %e, "leaving an unreadable job row out of a listing"))
                .ok()
        })
        .collect()
}

/// The events of a listing's rows: a row that cannot be read is left out
/// (and logged), so that one bad row never stops a tenant's stream.
fn readable_events<R>(rows: Vec<R>, seq: impl Fn(&R) -> i64) -> Vec<JobEvent>
where
    JobEvent: TryFrom<R, Error = Error>,
{
    rows.into_iter()
        .filter_map(|row| {
            let number = seq(&row);
            JobEvent::try_from(row)
                .inspect_err(|e| tracing::error!(event = number, error = %e, "leaving an unreadable event row out of a stream"))
                .ok()
        })
        .collect()
}

/// The migrations of a store, run at start. A database that a newer
/// version has migrated further is still used: migrations only add, so a
/// replica of the version before keeps working during a rolling upgrade,
/// and after a rollback.
macro_rules! migrator {
    ($dir:literal) => {{
        let mut migrator = sqlx::migrate!($dir);
        migrator.set_ignore_missing(true);
        migrator
    }};
}
pub(crate) use migrator;

/// A job that changed, as the store announces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobChange {
    /// The job.
    pub job_id: JobId,
    /// Its tenant; `None` when the announcement did not say.
    pub project_id: Option<String>,
}

impl JobChange {
    /// Reads an announcement: `<job id>` or `<job id> <project id>`.
    pub fn parse(payload: &str) -> Option<JobChange> {
        let (job_id, project_id) = match payload.split_once(' ') {
            Some((job_id, project_id)) => (job_id, Some(project_id.to_owned())),
            None => (payload, None),
        };
        Some(JobChange {
            job_id: job_id.parse().ok()?,
            project_id,
        })
    }
}

/// Called with each job that changed (`None`: changes may have been
/// missed, so every waiter should look again).
pub type ChangeListener = Arc<dyn Fn(Option<JobChange>) + Send + Sync>;

/// Durable storage of jobs. Every write of a job is compare-and-set on its
/// row version, so that two writers racing (a cancel and a submission, a
/// handler and the worker, two replicas) have one winner.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// `sqlite` or `postgres`.
    fn kind(&self) -> &'static str;
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
    /// `job.version + 1`; false when another writer came first. With a
    /// `fence`, also false unless that lease on the job's tenant is still
    /// held (the worker's writes).
    async fn update(&self, job: &Job, fence: Option<&Fence>) -> Result<bool, Error>;
    /// [`JobStore::update`] of several jobs, in one transaction where the
    /// store can (a burst of conclusions costs one commit, not one each):
    /// each job written or not by the same rules, the answers in order. A
    /// job whose write would break the one-unfinished-job-per-snapshot rule
    /// is answered false. On an error, any of them may have been written
    /// (SQLite: none; PostgreSQL, one by one: those before the failure):
    /// the caller reads them again before acting on them.
    async fn update_all(&self, jobs: &[Job], fence: Option<&Fence>) -> Result<Vec<bool>, Error> {
        let mut written = Vec::with_capacity(jobs.len());
        for job in jobs {
            written.push(match self.update(job, fence).await {
                Err(Error::ActiveJobExists) => false,
                other => other?,
            });
        }
        Ok(written)
    }
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

    /// The tenant's events numbered above `after` that `filter` lets
    /// through, oldest first, at most `limit`. The store writes a job's
    /// events in the transaction of its change (see the `job_events`
    /// migrations); a tenant's events are visible in the order of their
    /// numbers. A row that cannot be read is left out and logged.
    async fn events_after(
        &self,
        project_id: &str,
        after: i64,
        filter: &EventFilter,
        limit: u32,
    ) -> Result<Vec<JobEvent>, Error>;

    /// The number of the tenant's latest event, and how far its events may
    /// have been purged (see [`EventRange`]).
    async fn event_range(&self, project_id: &str) -> Result<EventRange, Error>;

    /// Deletes up to `batch` events that happened before `before`; how many.
    async fn purge_events(&self, before: DateTime<Utc>, batch: u32) -> Result<u64, Error>;
    /// Answers when the store is usable (readiness).
    async fn ping(&self) -> Result<(), Error>;
    /// How many jobs there are in each state (states with none left out).
    async fn count_by_state(&self) -> Result<Vec<(String, i64)>, Error>;

    /// Takes the tenant's lease for `holder` until `ttl` from now when it
    /// is free, expired, or held under `holder`'s own name (an earlier life
    /// of it): a new tenure, with the next generation. `None` while another
    /// holder's lease runs. One statement, so two replicas taking the same
    /// lease have one winner.
    async fn acquire_lease(
        &self,
        tenant: &TenantKey,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<i64>, Error>;
    /// Extends every unexpired lease held under `holder`'s name to `ttl`
    /// from now; those leases, with their generations.
    async fn renew_leases(&self, holder: &str, ttl: Duration) -> Result<Vec<HeldLease>, Error>;
    /// Gives up `holder`'s lease on the tenant (another replica may take it
    /// at once).
    async fn release_lease(&self, tenant: &TenantKey, holder: &str) -> Result<(), Error>;
    /// Records that `replica` is alive; how many replicas (itself included)
    /// were seen within `ttl`.
    async fn heartbeat(&self, replica: &str, ttl: Duration) -> Result<u32, Error>;
    /// Forgets `replica` and gives up all its leases (graceful shutdown).
    async fn leave(&self, replica: &str) -> Result<(), Error>;
    /// Calls `listener` for every job change made by any process on this
    /// store, until the store is dropped. Stores only one process uses
    /// offer nothing (the process wakes its own waiters); PostgreSQL
    /// forwards its notifications.
    fn watch_changes(&self, listener: ChangeListener);
    /// The webhook subscriptions and deliveries, in the same database.
    fn webhooks(&self) -> &dyn WebhookStore;
}

#[cfg(test)]
mod tests {
    use super::{JobChange, JobId, redact_url};

    #[test]
    fn a_database_urls_password_is_hidden_and_nothing_else_changes() {
        for (url, shown) in [
            (
                "postgres://gw:secret@db:5432/jobs?sslmode=require",
                "postgres://gw:***@db:5432/jobs?sslmode=require",
            ),
            (
                "postgres://gw:p@ss@word@db/jobs",
                "postgres://gw:***@db/jobs",
            ),
            ("postgres://gw@db/jobs", "postgres://gw@db/jobs"),
            ("postgres://db/jobs?user=gw", "postgres://db/jobs?user=gw"),
            (
                "postgres://db/jobs?user=gw&password=secret&sslmode=require",
                "postgres://db/jobs?user=gw&password=***&sslmode=require",
            ),
            ("sqlite://data/jobs.db", "sqlite://data/jobs.db"),
            ("not a url", "not a url"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn a_change_announcement_names_the_job_and_maybe_its_tenant() {
        let id = JobId::new();
        assert_eq!(
            JobChange::parse(&format!("{id} 9f1c2d")),
            Some(JobChange {
                job_id: id,
                project_id: Some("9f1c2d".into())
            })
        );
        assert_eq!(
            JobChange::parse(&id.to_string()),
            Some(JobChange {
                job_id: id,
                project_id: None
            }),
            "the job alone"
        );
        assert_eq!(JobChange::parse("not-a-job p1"), None);
        assert_eq!(JobChange::parse(""), None);
    }
}
