//! The job service: the tenant map, reading jobs, long polls, cancel, and
//! the compare-and-set write every job change goes through. Submitting
//! lives in `submission`, idempotency keys in `idempotency`, purging in
//! `retention`.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use super::{
    error::Error,
    model::{Job, JobId, JobState, now},
    waiters::Waiters,
};
use crate::{
    openstack::Cinder,
    store::{self, Fence, JobFilter, JobStore},
};

/// A cancel re-reads and decides again when its write lost a race; a job
/// changes only a few times in its life, so a few tries settle it.
const CANCEL_TRIES: usize = 5;

/// Tunables of job handling.
#[derive(Debug, Clone)]
pub struct JobsSettings {
    /// Submissions tried per job before it fails.
    pub submit_attempts: u32,
    /// First retry delay.
    pub retry_base: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// A backup `creating` longer than this fails the job; so does a job
    /// whose outcome cannot be learnt for this long.
    pub stuck_after: Duration,
    /// Longest long-poll.
    pub max_wait: Duration,
    /// Most long polls waiting at once.
    pub max_waiters: usize,
    /// How long a create may wait for Cinder's verdict, counted from its
    /// start; past it the job is answered `queued`. Shorter than the request
    /// time limit, so that a recorded job is never answered with a timeout.
    pub submit_budget: Duration,
    /// The request time limit: a create still unanswered after it is gone.
    pub request_timeout: Duration,
    /// Time limit of one upstream call: after a POST timed out, Cinder may
    /// work on it this long still, so the next listing waits that long.
    pub upstream_timeout: Duration,
    /// Finished jobs are kept this long.
    pub retention: Duration,
    /// Idempotency keys are kept this long.
    pub idempotency_ttl: Duration,
    /// Job events are kept this long.
    pub event_retention: Duration,
    /// Most event streams one tenant may have open at once.
    pub max_event_streams: usize,
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

    /// The tenants a cloud entry acts for.
    pub fn of<'a>(&'a self, cloud: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(_, c)| c.as_str() == cloud)
            .map(|(tenant, _)| tenant.as_str())
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
    /// Long polls, woken per job: by this process's writes, and by the
    /// store's announcements of other replicas' writes.
    pub(super) waiters: Arc<Waiters>,
    /// The open event streams, per tenant.
    pub(super) event_streams: Arc<super::events::StreamSlots>,
    /// Completion estimates of running jobs, from each tenant's history.
    pub(super) estimates: super::estimates::Estimates,
    /// Set once the process stops: long polls answer at once.
    stopping: std::sync::atomic::AtomicBool,
}

impl Jobs {
    /// Builds the job service (in a Tokio runtime: it subscribes to the
    /// store's job changes).
    pub fn new(
        store: Arc<dyn JobStore>,
        cinder: Arc<dyn Cinder>,
        tenants: Tenants,
        settings: JobsSettings,
    ) -> Self {
        let waiters = Arc::new(Waiters::new(settings.max_waiters));
        let woken = waiters.clone();
        store.watch_changes(Arc::new(move |change| match change {
            Some(change) => woken.notify(change.job_id, change.project_id.as_deref()),
            None => woken.notify_all(),
        }));
        Jobs {
            store,
            cinder,
            tenants,
            waiters,
            event_streams: super::events::StreamSlots::new(settings.max_event_streams),
            estimates: super::estimates::Estimates::default(),
            settings,
            stopping: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The process is stopping: every long poll answers now, with the job
    /// as it is, so that shutdown does not wait out their `?wait=`.
    pub fn begin_shutdown(&self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.waiters.notify_all();
    }

    pub(super) fn is_stopping(&self) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The tenant names whose cloud entry is `cloud`.
    pub fn tenants_of<'a>(&'a self, cloud: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.tenants.of(cloud)
    }

    /// What each tenant's Keystone and Cinder last answered, by tenant
    /// (a tenant map entry), with the clouds.yaml entry acting for it.
    pub fn upstream_health(&self) -> BTreeMap<String, (String, crate::openstack::UpstreamHealth)> {
        let clouds = self.cinder.health();
        self.tenants
            .0
            .iter()
            .map(|(tenant, cloud)| {
                let health = clouds.get(cloud).cloned().unwrap_or_default();
                (tenant.clone(), (cloud.clone(), health))
            })
            .collect()
    }

    /// The longest long poll a caller may ask for.
    pub fn max_wait(&self) -> Duration {
        self.settings.max_wait
    }

    /// The store (for readiness checks).
    pub fn store(&self) -> &Arc<dyn JobStore> {
        &self.store
    }

    /// Long polls waiting now.
    pub fn waiting(&self) -> usize {
        self.waiters.count()
    }

    /// What sees every job change from now on (this process's writes and,
    /// on a shared store, other replicas').
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.waiters.any_change()
    }

    /// The Keystone project of a tenant (a tenant map entry).
    pub async fn project_of(&self, tenant: &str) -> Result<String, Error> {
        Ok(self.tenant(tenant).await?.1)
    }

    /// The tenant's cloud entry and Keystone project id.
    pub(super) async fn tenant(&self, tenant: &str) -> Result<(String, String), Error> {
        let cloud = self.tenants.cloud(tenant)?.to_owned();
        let project_id = self.cinder.project_id(&cloud).await?;
        Ok((cloud, project_id))
    }

    /// Writes a changed job, compare-and-set on the version it was read at,
    /// and wakes its long polls. True when written (the job's version then
    /// follows the store's); a lost race or a store failure is logged and
    /// answered false: the other writer's state stands, and a job the store
    /// did not take is found again from what the store holds.
    pub(super) async fn save(&self, job: &mut Job) -> bool {
        self.save_fenced(job, None).await
    }

    /// [`Jobs::save`] for the worker: the write also needs the tenant's
    /// lease to be held still, so a replica that lost it changes nothing.
    pub(super) async fn save_fenced(&self, job: &mut Job, fence: Option<&Fence>) -> bool {
        let result = self.store.update(job, fence).await;
        self.follow_write(job, result)
    }

    /// [`Jobs::save_fenced`] of several jobs at once (one store transaction
    /// where the store can).
    pub(super) async fn save_all_fenced(&self, jobs: &mut [Job], fence: Option<&Fence>) {
        match self.store.update_all(jobs, fence).await {
            Ok(written) => {
                for (job, written) in jobs.iter_mut().zip(written) {
                    self.follow_write(job, Ok(written));
                }
            }
            Err(e) => {
                // Some may have been written (see `update_all`): all are
                // read again at the next cycle, as after a lost race.
                let first: Vec<String> = jobs.iter().take(5).map(|j| j.id.to_string()).collect();
                tracing::error!(jobs = jobs.len(), first = ?first, error = %e, "could not record the jobs' changes");
            }
        }
    }

    /// What follows a job's write: written, its version follows the
    /// store's and its long polls wake; else the reason is logged.
    fn follow_write(&self, job: &mut Job, result: Result<bool, store::Error>) -> bool {
        match result {
            Ok(true) => {
                job.version += 1;
                tracing::debug!(job_id = %job.id, state = job.state.as_str(), version = job.version, "job change recorded");
                self.waiters.notify(job.id, Some(&job.project_id));
                self.estimates.record(job);
                if job.state.is_done() {
                    // A job is written done once: its life ends here.
                    let ended = job.finished_at.unwrap_or_else(now);
                    let seconds =
                        (ended - job.created_at).num_milliseconds().max(0) as f64 / 1000.0;
                    crate::metrics::metrics()
                        .job_duration
                        .get_or_create(&crate::metrics::StateLabels {
                            state: job.state.as_str(),
                        })
                        .observe(seconds);
                }
                true
            }
            Ok(false) => {
                tracing::info!(job_id = %job.id, state = job.state.as_str(), "job changed elsewhere (or this replica's lease on its tenant ended); update skipped");
                false
            }
            Err(e) => {
                tracing::error!(job_id = %job.id, error = %e, "could not record a job change");
                false
            }
        }
    }

    /// Wakes the long polls and event streams of a job changed other than
    /// by [`Jobs::save`].
    pub(super) fn notify(&self, job: &Job) {
        self.waiters.notify(job.id, Some(&job.project_id));
    }

    /// One job of the caller's tenant. Another tenant's job is "not found".
    pub async fn get(&self, tenant: &str, id: &str) -> Result<Job, Error> {
        let (_, project_id) = self.tenant(tenant).await?;
        let job = self.get_in(&project_id, id).await?;
        self.shown(std::slice::from_ref(&job)).await;
        Ok(job)
    }

    /// Records that these jobs' ids were shown: a job whose first
    /// submission is still running must then never be removed, even if
    /// Cinder refuses it. Only unfinished jobs not yet marked cost a write.
    pub(super) async fn shown(&self, jobs: &[Job]) {
        for job in jobs
            .iter()
            .filter(|j| j.state == JobState::Queued && !j.shown)
        {
            if let Err(e) = self.store.mark_shown(job.id).await {
                tracing::warn!(job_id = %job.id, error = %e, "could not record that a job was shown");
            }
        }
    }

    pub(super) async fn get_in(&self, project_id: &str, id: &str) -> Result<Job, Error> {
        let not_found = || Error::JobNotFound(id.to_owned());
        let job_id: JobId = id.parse().map_err(|_| not_found())?;
        match self.store.get(job_id).await? {
            Some(job) if job.project_id == project_id => Ok(job),
            _ => Err(not_found()),
        }
    }

    /// Waits until the job changes from what it is now, it is done, or
    /// `wait` passes, then answers the job as it is. Past the cap on long
    /// polls, answers at once.
    pub async fn wait(&self, tenant: &str, id: &str, wait: Duration) -> Result<Job, Error> {
        let (_, project_id) = self.tenant(tenant).await?;
        let deadline = tokio::time::Instant::now() + wait.min(self.settings.max_wait);
        let first = self.get_in(&project_id, id).await?;
        self.shown(std::slice::from_ref(&first)).await;
        if first.state.is_done() || self.is_stopping() {
            return Ok(first);
        }
        let Some(waiter) = self.waiters.register(first.id) else {
            tracing::info!(job_id = %first.id, "too many long polls; answering at once");
            return Ok(first);
        };
        let changed = |job: &Job| job.state.is_done() || job.version != first.version;
        loop {
            let notified = waiter.changed.notified();
            tokio::pin!(notified);
            // Armed before the read: a change after the read still wakes us.
            notified.as_mut().enable();
            let current = self.get_in(&project_id, id).await?;
            if changed(&current) || self.is_stopping() {
                return Ok(current);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(current);
            }
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
        self.shown(&jobs).await;
        Ok(JobPage { jobs, next })
    }

    /// Cancels a job that Cinder cannot have yet: `queued`, and no POST of
    /// it may have reached Cinder. Compare-and-set against the submission's
    /// own write before its POST, so exactly one of the two wins. A job
    /// already cancelled is answered as it is.
    pub async fn cancel(&self, tenant: &str, id: &str) -> Result<Job, Error> {
        let (_, project_id) = self.tenant(tenant).await?;
        for _ in 0..CANCEL_TRIES {
            let mut job = self.get_in(&project_id, id).await?;
            let refused = |reason| Error::NotCancellable {
                job_id: job.id.to_string(),
                state: job.state.as_str(),
                reason,
            };
            match job.state {
                JobState::Cancelled => return Ok(job),
                JobState::Succeeded | JobState::Failed => {
                    return Err(refused("already finished"));
                }
                JobState::Running => {
                    return Err(refused("Cinder already has its backup"));
                }
                JobState::Queued if job.posted_at.is_some() => {
                    return Err(refused(
                        "a request for its backup may already have reached Cinder",
                    ));
                }
                JobState::Queued => {}
            }
            job.cancel();
            if self.save(&mut job).await {
                tracing::info!(job_id = %job.id, "job cancelled");
                return Ok(job);
            }
            // Changed meanwhile (a submission claimed it, or the store
            // failed): decide again on what is stored now.
            self.store.ping().await?;
        }
        Err(Error::Internal(format!(
            "job {id} kept changing while it was being cancelled"
        )))
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
