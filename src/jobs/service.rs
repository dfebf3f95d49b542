//! Submitting backups and reading jobs, for one tenant at a time.

use std::{
    collections::{BTreeMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use super::{
    error::{Error, upstream_problem},
    model::{BackupOptions, Job, JobId, JobState, now},
};
use crate::{
    openstack::{self, CallContext, Cinder, NewBackup},
    problem::{Problem, ProblemKind},
    store::{self, JobFilter, JobStore},
};

/// The metadata key that carries the job id on the backup: how a job finds
/// its backup again after a lost answer or a crash.
pub const JOB_ID_METADATA_KEY: &str = "gateway_job_id";

/// Cinder's limit on names, descriptions, containers, zones and metadata.
const MAX_FIELD_CHARS: usize = 255;

/// Tunables of job handling.
#[derive(Debug, Clone)]
pub struct JobsSettings {
    /// Submissions tried per job before it fails.
    pub submit_attempts: u32,
    /// First retry delay.
    pub retry_base: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// A backup `creating` longer than this fails the job.
    pub stuck_after: Duration,
    /// Longest long-poll.
    pub max_wait: Duration,
    /// How long a create may wait for Cinder's verdict, counted from its
    /// start; past it the job is answered `queued`. Shorter than the request
    /// time limit, so that a recorded job is never answered with a timeout.
    pub submit_budget: Duration,
}

/// The tenant map: a caller's tenant claim -> the clouds.yaml entry acting
/// for it.
#[derive(Debug, Clone, Default)]
pub struct Tenants(BTreeMap<String, String>);

impl Tenants {
    /// From `tenant -> cloud` pairs.
    pub fn new(map: BTreeMap<String, String>) -> Self {
        Tenants(map)
    }

    /// The cloud entry of a tenant.
    pub fn cloud(&self, tenant: &str) -> Result<&str, Error> {
        self.0
            .get(tenant)
            .map(String::as_str)
            .ok_or_else(|| Error::TenantNotConfigured(tenant.to_owned()))
    }

    /// Every configured cloud entry.
    pub fn clouds(&self) -> impl Iterator<Item = &str> {
        self.0.values().map(String::as_str)
    }
}

/// One page of jobs.
#[derive(Debug)]
pub struct JobPage {
    /// Newest first.
    pub jobs: Vec<Job>,
    /// Id to continue after, when there are more.
    pub next: Option<JobId>,
}

/// The job operations.
pub struct Jobs {
    pub(super) store: Arc<dyn JobStore>,
    pub(super) cinder: Arc<dyn Cinder>,
    pub(super) tenants: Tenants,
    pub(super) settings: JobsSettings,
    /// Woken at every job change (long polls wait on it).
    changed: Notify,
    /// Jobs whose submission runs right now in this process: the worker
    /// leaves them alone.
    in_flight: Mutex<HashSet<JobId>>,
}

/// Removes a job from the in-flight set when the submission ends, however.
struct InFlight {
    jobs: Arc<Jobs>,
    id: JobId,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut set) = self.jobs.in_flight.lock() {
            set.remove(&self.id);
        }
    }
}

/// How one submission to Cinder ended.
enum Submitted {
    /// Cinder has the backup (just created, or found by its job id).
    Accepted,
    /// Cinder refused for good.
    Refused(openstack::Error),
    /// Outcome unknown or failure passing: try again later.
    Unclear(openstack::Error),
}

impl Jobs {
    /// Builds the job service.
    pub fn new(
        store: Arc<dyn JobStore>,
        cinder: Arc<dyn Cinder>,
        tenants: Tenants,
        settings: JobsSettings,
    ) -> Self {
        Jobs {
            store,
            cinder,
            tenants,
            settings,
            changed: Notify::new(),
            in_flight: Mutex::new(HashSet::new()),
        }
    }

    /// The store (for readiness checks).
    pub fn store(&self) -> &Arc<dyn JobStore> {
        &self.store
    }

    /// The tenant's cloud entry and Keystone project id.
    pub(super) async fn tenant(&self, tenant: &str) -> Result<(String, String), Error> {
        let cloud = self.tenants.cloud(tenant)?.to_owned();
        let project_id = self.cinder.project_id(&cloud).await?;
        Ok((cloud, project_id))
    }

    /// Creates a backup of a snapshot: checks the request, reads the
    /// snapshot, records a `queued` job, then submits it to Cinder.
    ///
    /// A definitive refusal by Cinder leaves no job behind and is returned as
    /// the error. An unclear outcome returns the job still `queued`; the
    /// worker finds out what happened and retries.
    #[tracing::instrument(skip_all, fields(tenant, snapshot_id, job_id))]
    pub async fn submit(
        self: &Arc<Self>,
        tenant: &str,
        snapshot_id: &str,
        options: BackupOptions,
        ctx: CallContext,
    ) -> Result<Job, Error> {
        let deadline = tokio::time::Instant::now() + self.settings.submit_budget;
        check_snapshot_id(snapshot_id)?;
        validate_options(&options)?;
        let (cloud, project_id) = self.tenant(tenant).await?;
        let snapshot = self
            .cinder
            .show_snapshot(&cloud, snapshot_id, &ctx)
            .await
            .map_err(|e| snapshot_error(snapshot_id, e))?;
        if snapshot.status != "available" {
            if let Some(active) = self
                .store
                .active_for_snapshot(&project_id, &snapshot.id)
                .await?
            {
                return Err(busy(&active));
            }
            return Err(Error::SnapshotNotAvailable {
                id: snapshot.id,
                status: snapshot.status,
            });
        }
        if tokio::time::Instant::now() >= deadline {
            // Too late to record a job and still answer it in time.
            return Err(Error::Upstream(openstack::Error::Unavailable {
                service: openstack::error::Service::Cinder,
                message: "reading the snapshot took the whole request time; nothing was recorded"
                    .into(),
                status: None,
                request_id: None,
            }));
        }
        let job = Job::new(project_id, cloud, snapshot.id, snapshot.volume_id, options);
        tracing::Span::current().record("job_id", tracing::field::display(job.id));
        // Marked in flight before it is stored: a worker cycle that reads the
        // new `queued` job must leave it to this submission, or both would
        // post a backup.
        let guard = self.enter(job.id);
        match self.store.insert(&job).await {
            Ok(()) => {}
            Err(store::Error::ActiveJobExists) => {
                let active = self
                    .store
                    .active_for_snapshot(&job.project_id, &job.snapshot_id)
                    .await?;
                return Err(match active {
                    Some(active) => busy(&active),
                    // The other job finished in between: report it as busy anyway;
                    // a retry by the caller will go through.
                    None => Error::Store(store::Error::ActiveJobExists),
                });
            }
            Err(e) => return Err(e.into()),
        }
        self.changed.notify_waiters();
        // The submission runs in a task of its own: axum drops a handler's
        // future when the client goes away, and that must never cut between
        // Cinder's 202 and the store write that records it.
        let recorded = job.clone();
        let this = self.clone();
        let submission = tokio::spawn(async move { this.first_submission(job, ctx, guard).await });
        // The caller waits for Cinder's verdict only while the request's
        // budget lasts: past it, the job is answered as recorded (`queued`)
        // and the submission carries on, rather than a timeout answering an
        // error for a job that exists.
        match tokio::time::timeout_at(deadline, submission).await {
            Ok(joined) => joined.map_err(|e| Error::Internal(format!("submission task: {e}")))?,
            Err(_) => {
                tracing::warn!(job_id = %recorded.id, "Cinder is slow to answer; the job is answered queued");
                Ok(recorded)
            }
        }
    }

    async fn first_submission(
        &self,
        mut job: Job,
        ctx: CallContext,
        _guard: InFlight,
    ) -> Result<Job, Error> {
        match self.post_backup(&mut job, &ctx).await {
            Submitted::Accepted => {
                self.save(&job, JobState::Queued).await;
                Ok(job)
            }
            Submitted::Refused(e) => {
                // Refused at once: the caller gets Cinder's answer and no job
                // is left behind.
                if let Err(store_error) = self.store.delete(job.id, JobState::Queued).await {
                    // It must not stay `queued`: the worker would submit what
                    // the caller was told was refused.
                    tracing::error!(job_id = %job.id, error = %store_error, "could not remove a refused job; marking it failed");
                    job.fail(upstream_problem(&e));
                    self.save(&job, JobState::Queued).await;
                }
                self.changed.notify_waiters();
                Err(match e {
                    openstack::Error::Cinder { status: 404, .. } => {
                        snapshot_error(&job.snapshot_id, e)
                    }
                    other => Error::Upstream(other),
                })
            }
            Submitted::Unclear(e) => {
                self.schedule_retry(&mut job, &e);
                self.save(&job, JobState::Queued).await;
                Ok(job)
            }
        }
    }

    /// The worker's submission of a `queued` job: first look for a backup
    /// that already carries the job id (a lost answer or a crash may have
    /// left one), then post a new one.
    pub(super) async fn resubmit(self: &Arc<Self>, job: Job) {
        let Some(_guard) = self.try_enter(job.id) else {
            return;
        };
        // Read again now that no one else in this process works on it: the
        // copy the cycle listed may be stale (another submission may have
        // ended in between), and posting from it would make a second backup.
        let mut job = match self.store.get(job.id).await {
            Ok(Some(current)) if is_due(&current, now()) => current,
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(job_id = %job.id, error = %e, "could not read the job again; will retry");
                return;
            }
        };
        let ctx = CallContext::default();
        let outcome = match self.find_backup(&job, &ctx).await {
            Ok(Some(backup_id)) => {
                tracing::info!(job_id = %job.id, backup_id, "adopted the backup already made for this job");
                job.start(backup_id, None);
                Submitted::Accepted
            }
            Ok(None) => self.post_backup(&mut job, &ctx).await,
            // Without a complete listing, a backup made by an earlier lost
            // answer may exist: never post blind, look again later.
            Err(e) => {
                job.attempts += 1;
                Submitted::Unclear(e)
            }
        };
        match outcome {
            Submitted::Accepted => {}
            // A snapshot still `backing-up` may be the work of our own lost
            // earlier request that Cinder has not listed yet: look again
            // later rather than failing a backup that may be running.
            Submitted::Refused(e) if !e.is_snapshot_not_available() => {
                job.fail(upstream_problem(&e))
            }
            Submitted::Unclear(e) | Submitted::Refused(e) => {
                if job.attempts < self.settings.submit_attempts {
                    self.schedule_retry(&mut job, &e);
                } else {
                    self.give_up(&mut job, &e, &ctx).await;
                }
            }
        }
        self.save(&job, JobState::Queued).await;
    }

    /// Out of attempts: one last look for the job's backup (a POST whose
    /// answer was lost may have made it since the previous look), then fail
    /// with the last upstream reason.
    async fn give_up(&self, job: &mut Job, last: &openstack::Error, ctx: &CallContext) {
        let mut problem = upstream_problem(last);
        problem.detail = format!(
            "gave up after {} attempts: {}",
            job.attempts, problem.detail
        );
        match self.find_backup(job, ctx).await {
            Ok(Some(backup_id)) => {
                tracing::info!(job_id = %job.id, backup_id, "adopted the backup made by an earlier attempt");
                job.start(backup_id, None);
            }
            Ok(None) => job.fail(problem),
            Err(e) => {
                problem.detail.push_str(&format!(
                    "; the volume's backups could not be listed to look for one made by an earlier attempt ({e})"
                ));
                job.fail(problem);
            }
        }
    }

    /// Posts the backup with the job id in its metadata.
    async fn post_backup(&self, job: &mut Job, ctx: &CallContext) -> Submitted {
        job.attempts += 1;
        let mut metadata = job.options.metadata.clone();
        metadata.insert(JOB_ID_METADATA_KEY.to_owned(), job.id.to_string());
        let request = NewBackup {
            volume_id: job.volume_id.clone(),
            snapshot_id: job.snapshot_id.clone(),
            name: job.options.name.clone(),
            description: job.options.description.clone(),
            incremental: job.options.incremental,
            force: job.options.force,
            container: job.options.container.clone(),
            availability_zone: job.options.availability_zone.clone(),
            metadata,
        };
        match self.cinder.create_backup(&job.cloud, &request, ctx).await {
            Ok(accepted) => {
                tracing::info!(job_id = %job.id, backup_id = %accepted.backup_id, "Cinder accepted the backup");
                job.start(accepted.backup_id, accepted.request_id);
                Submitted::Accepted
            }
            Err(e) if e.is_transient() => {
                tracing::warn!(job_id = %job.id, error = %e, "backup submission unclear; will retry");
                Submitted::Unclear(e)
            }
            Err(e) => {
                tracing::info!(job_id = %job.id, error = %e, "Cinder refused the backup");
                Submitted::Refused(e)
            }
        }
    }

    /// The backup of the volume whose metadata names this job, if any.
    async fn find_backup(
        &self,
        job: &Job,
        ctx: &CallContext,
    ) -> Result<Option<String>, openstack::Error> {
        let filter = openstack::BackupFilter {
            volume_id: Some(job.volume_id.clone()),
            ..Default::default()
        };
        let backups = self.cinder.list_backups(&job.cloud, &filter, ctx).await?;
        let wanted = job.id.to_string();
        Ok(backups
            .into_iter()
            .find(|b| b.metadata.get(JOB_ID_METADATA_KEY) == Some(&wanted))
            .map(|b| b.id))
    }

    fn schedule_retry(&self, job: &mut Job, e: &openstack::Error) {
        let delay = backoff(
            job.attempts,
            self.settings.retry_base,
            self.settings.retry_max,
        );
        let next = now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
        job.retry_at(upstream_problem(e), next);
    }

    /// Writes a changed job (compare-and-set on its previous state) and wakes
    /// long polls. A lost race is logged, not an error: the other writer's
    /// state stands.
    pub(super) async fn save(&self, job: &Job, expected: JobState) {
        match self.store.update(job, expected).await {
            Ok(true) => self.changed.notify_waiters(),
            Ok(false) => {
                tracing::info!(job_id = %job.id, state = job.state.as_str(), "job changed elsewhere; update skipped")
            }
            // The job stays as stored; the worker will find the backup by
            // its job id.
            Err(e) => {
                tracing::error!(job_id = %job.id, error = %e, "could not record a job change")
            }
        }
    }

    fn enter(self: &Arc<Self>, id: JobId) -> InFlight {
        if let Ok(mut set) = self.in_flight.lock() {
            set.insert(id);
        }
        InFlight {
            jobs: self.clone(),
            id,
        }
    }

    fn try_enter(self: &Arc<Self>, id: JobId) -> Option<InFlight> {
        let mut set = self.in_flight.lock().ok()?;
        set.insert(id).then(|| InFlight {
            jobs: self.clone(),
            id,
        })
    }

    /// One job of the caller's tenant. Another tenant's job is "not found".
    pub async fn get(&self, tenant: &str, id: &str) -> Result<Job, Error> {
        let (_, project_id) = self.tenant(tenant).await?;
        self.get_in(&project_id, id).await
    }

    async fn get_in(&self, project_id: &str, id: &str) -> Result<Job, Error> {
        let not_found = || Error::JobNotFound(id.to_owned());
        let job_id: JobId = id.parse().map_err(|_| not_found())?;
        match self.store.get(job_id).await? {
            Some(job) if job.project_id == project_id => Ok(job),
            _ => Err(not_found()),
        }
    }

    /// Waits until the job changes from what `since` shows, it is done, or
    /// `wait` passes, then answers the job as it is.
    pub async fn wait(&self, tenant: &str, id: &str, wait: Duration) -> Result<Job, Error> {
        let (_, project_id) = self.tenant(tenant).await?;
        let deadline = tokio::time::Instant::now() + wait.min(self.settings.max_wait);
        let first = self.get_in(&project_id, id).await?;
        let mut current = first.clone();
        loop {
            if current.state.is_done() || current != first {
                return Ok(current);
            }
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // Re-read after arming the notification, so no change is missed.
            current = self.get_in(&project_id, id).await?;
            if current.state.is_done() || current != first {
                return Ok(current);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(current);
            }
            current = self.get_in(&project_id, id).await?;
        }
    }

    /// The tenant's jobs, newest first.
    pub async fn list(
        &self,
        tenant: &str,
        filter: &JobFilter,
        limit: u32,
        after: Option<JobId>,
    ) -> Result<JobPage, Error> {
        let (_, project_id) = self.tenant(tenant).await?;
        let mut jobs = self
            .store
            .list(&project_id, filter, limit + 1, after)
            .await?;
        let next = if jobs.len() > limit as usize {
            jobs.truncate(limit as usize);
            jobs.last().map(|j| j.id)
        } else {
            None
        };
        Ok(JobPage { jobs, next })
    }

    /// The retry delay a caller of a `queued` or `running` job is told to
    /// wait before polling again.
    pub fn suggested_poll_delay(&self, job: &Job) -> Duration {
        match job.next_attempt_at {
            Some(at) if job.state == JobState::Queued => (at - now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .max(Duration::from_secs(1)),
            _ => Duration::from_secs(2),
        }
    }
}

fn busy(active: &Job) -> Error {
    Error::SnapshotBusy {
        snapshot_id: active.snapshot_id.clone(),
        job_id: active.id.to_string(),
    }
}

/// Refuses path ids that a URL would turn into dot segments: `.` and `..`
/// would name another resource of Cinder's, not a snapshot.
pub(super) fn check_snapshot_id(id: &str) -> Result<(), Error> {
    if id.is_empty() || id.chars().all(|c| c == '.') {
        return Err(Error::Invalid(format!("`{id}` is not a snapshot id")));
    }
    Ok(())
}

/// A snapshot read's 404 is "no such snapshot in your tenant".
pub(super) fn snapshot_error(snapshot_id: &str, e: openstack::Error) -> Error {
    match e {
        openstack::Error::Cinder { status: 404, .. } => Error::SnapshotNotFound {
            id: snapshot_id.to_owned(),
            source: e,
        },
        other => Error::Upstream(other),
    }
}

/// Exponential backoff with jitter: the n-th retry waits between half and
/// all of `base * 2^(n-1)`, never more than `max`.
pub fn backoff(attempt: u32, base: Duration, max: Duration) -> Duration {
    let exp = base
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
        .min(max);
    exp.mul_f64(0.5 + fastrand::f64() / 2.0)
}

/// Checks the create request's fields the way Cinder would, so that a bad
/// request is refused before anything is recorded or sent.
fn validate_options(options: &BackupOptions) -> Result<(), Error> {
    let fields = [
        ("name", &options.name),
        ("description", &options.description),
        ("container", &options.container),
        ("availability_zone", &options.availability_zone),
    ];
    for (field, value) in fields {
        if let Some(value) = value
            && value.chars().count() > MAX_FIELD_CHARS
        {
            return Err(Error::Invalid(format!(
                "`{field}` is longer than {MAX_FIELD_CHARS} characters"
            )));
        }
    }
    if let Some(az) = &options.availability_zone
        && az.is_empty()
    {
        return Err(Error::Invalid(
            "`availability_zone` must not be empty".into(),
        ));
    }
    for (key, value) in &options.metadata {
        if key == JOB_ID_METADATA_KEY {
            return Err(Error::Invalid(format!(
                "metadata key `{JOB_ID_METADATA_KEY}` is reserved: the gateway puts the job id there"
            )));
        }
        let key_ok = !key.is_empty()
            && key.chars().count() <= MAX_FIELD_CHARS
            && key.chars().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '.' | ' ' | '/')
            });
        if !key_ok {
            return Err(Error::Invalid(format!(
                "metadata key `{key}` must be 1 to 255 characters of letters, digits and - _ : . / or space"
            )));
        }
        if value.chars().count() > MAX_FIELD_CHARS {
            return Err(Error::Invalid(format!(
                "metadata value of `{key}` is longer than {MAX_FIELD_CHARS} characters"
            )));
        }
    }
    Ok(())
}

/// When the worker should look at a queued job again.
pub(super) fn is_due(job: &Job, at: DateTime<Utc>) -> bool {
    job.state == JobState::Queued && job.next_attempt_at.is_none_or(|t| t <= at)
}

/// A failed backup may leave its snapshot `backing-up` (Cinder does this for
/// some failures and only an admin can reset it): say so on the job.
pub(super) fn with_stuck_snapshot_note(
    mut problem: Problem,
    snapshot_status: Option<&str>,
) -> Problem {
    if snapshot_status == Some("backing-up") {
        problem.detail.push_str(
            "; Cinder left the snapshot `backing-up`, so it cannot be backed up again until an administrator resets its status to `available`",
        );
    }
    problem
}

/// The problem of a backup that ended in Cinder's `error` status.
pub(super) fn backup_failed(fail_reason: Option<&str>) -> Problem {
    Problem::new(
        ProblemKind::BackupFailed,
        format!(
            "Cinder reports the backup failed: {}",
            fail_reason.unwrap_or("no reason given")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_jitter_and_caps() {
        let base = Duration::from_secs(2);
        let max = Duration::from_secs(60);
        for _ in 0..50 {
            let first = backoff(1, base, max);
            assert!(
                first >= Duration::from_secs(1) && first <= base,
                "{first:?}"
            );
            let third = backoff(3, base, max);
            assert!(
                third >= Duration::from_secs(4) && third <= Duration::from_secs(8),
                "{third:?}"
            );
            assert!(backoff(30, base, max) <= max);
        }
    }

    #[test]
    fn reserved_and_malformed_metadata_is_refused() {
        let mut options = BackupOptions::default();
        options
            .metadata
            .insert(JOB_ID_METADATA_KEY.into(), "x".into());
        assert!(
            matches!(validate_options(&options), Err(Error::Invalid(m)) if m.contains("reserved"))
        );
        let mut options = BackupOptions::default();
        options.metadata.insert("bad*key".into(), "x".into());
        assert!(validate_options(&options).is_err());
        let options = BackupOptions {
            name: Some("n".repeat(256)),
            ..Default::default()
        };
        assert!(validate_options(&options).is_err());
        let mut options = BackupOptions {
            name: Some("n".repeat(255)),
            ..Default::default()
        };
        options
            .metadata
            .insert("team/app:env".into(), "prod".into());
        assert!(validate_options(&options).is_ok());
    }
}
