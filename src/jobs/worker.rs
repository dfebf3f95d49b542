//! The worker: follows running jobs to their end and retries queued ones.
//!
//! Each cycle costs Cinder a number of calls that grows with tenants (and
//! result pages), not with jobs: per tenant one listing of its `creating`
//! backups (the summary listing: ids are all it needs). A running job whose
//! backup is absent from a complete listing has finished; how is read from
//! one listing of the tenant's most recently updated backups, or, for a
//! backup that listing does not hold, from the backup itself. A tenant's
//! finished jobs are written together.
//!
//! A replica works only the tenants whose lease it holds (see `leases`),
//! and every job write of a pass carries that lease, so that replicas on
//! one store never work a tenant at the same time.
//!
//! Tenants are worked independently: each tick starts a pass for every
//! tenant whose previous pass has ended, without waiting for the others, so
//! a slow or failing tenant never delays another's conclusions. The
//! worker's upstream calls are capped (`--worker-concurrency`), and a
//! tenant's due jobs are submitted a few at a time (`--tenant-concurrency`).

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{sync::Semaphore, task::JoinSet};

use super::{
    error::upstream_problem,
    leases::Leases,
    model::{Job, JobState, ago, human, now},
    service::Jobs,
    submission::is_due,
};
use crate::{
    openstack::{self, BackupFilter, CallContext},
    problem::{Problem, ProblemKind},
    store::{Fence, TenantKey},
};

/// Backups read beyond those that left `creating` when the recently
/// updated ones are listed: room for a few the tenant changed otherwise.
const RECENT_SLACK: usize = 10;

/// Limits of the worker's parallelism.
#[derive(Debug, Clone, Copy)]
pub struct WorkerLimits {
    /// Most upstream operations the worker runs at once, all tenants
    /// together (a listing, a submission or a backup read each count one).
    pub concurrency: usize,
    /// Most submissions of one tenant at once.
    pub per_tenant: usize,
}

/// Runs cycles of job reconciliation.
#[derive(Clone)]
pub struct Worker {
    jobs: Arc<Jobs>,
    leases: Arc<Leases>,
    limits: WorkerLimits,
    permits: Arc<Semaphore>,
    /// Tenants whose pass is running.
    busy: Arc<Mutex<BTreeSet<TenantKey>>>,
    /// Ids of unfinished rows that cannot be read, for readiness; each is
    /// logged once.
    unreadable: Arc<Mutex<BTreeMap<String, String>>>,
}

/// Leaves the busy set when a tenant's pass ends, however.
struct Busy {
    set: Arc<Mutex<BTreeSet<TenantKey>>>,
    key: TenantKey,
}

impl Drop for Busy {
    fn drop(&mut self) {
        lock(&self.set).remove(&self.key);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain sets and maps: nothing a panic elsewhere could leave half-done.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Worker {
    /// A worker over the job service, working the tenants whose leases it
    /// holds.
    pub fn new(jobs: Arc<Jobs>, leases: Arc<Leases>, limits: WorkerLimits) -> Self {
        Worker {
            jobs,
            leases,
            permits: Arc::new(Semaphore::new(limits.concurrency.max(1))),
            limits,
            busy: Arc::default(),
            unreadable: Arc::default(),
        }
    }

    /// Ids of unfinished jobs whose rows cannot be read (they are skipped).
    pub fn unreadable_jobs(&self) -> Vec<String> {
        lock(&self.unreadable).keys().cloned().collect()
    }

    /// The tenant leases of this replica.
    pub fn leases(&self) -> &Arc<Leases> {
        &self.leases
    }

    /// Starts a pass for every idle tenant it holds every `interval`, and
    /// renews its leases in between, until `stop` turns true (or the task
    /// is dropped). On `stop` it starts nothing more and returns once the
    /// passes under way have ended: a pass is never cut between Cinder's
    /// answer and the store write (the caller bounds the wait). Jobs left
    /// in the store by an earlier process are picked up at the first tick.
    pub async fn run(self, interval: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut renewal = tokio::time::interval(self.leases.renew_every());
        renewal.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut passes = JoinSet::new();
        loop {
            let scheduled = tokio::select! {
                changed = stop.changed() => {
                    // Stopping, or whoever could stop the worker is gone.
                    if changed.is_err() || *stop.borrow() {
                        break;
                    }
                    continue;
                }
                scheduled = ticker.tick() => scheduled,
                _ = renewal.tick() => {
                    // Passes can outlast a lease's time to live (a slow
                    // Cinder): renewing apart from the cycle keeps them.
                    if let Err(e) = self.leases.renew().await {
                        tracing::warn!(error = %e, "could not renew the tenant leases");
                    }
                    continue;
                }
            };
            let metrics = crate::metrics::metrics();
            metrics.worker_lag.set(scheduled.elapsed().as_secs_f64());
            // Reap finished passes (their panics are logged).
            while let Some(done) = passes.try_join_next() {
                if let Err(e) = done {
                    tracing::error!(error = %e, "a tenant's pass died");
                }
            }
            let started = std::time::Instant::now();
            if let Err(e) = self.start_passes(&mut passes).await {
                tracing::error!(error = %e, "worker cycle failed");
            }
            metrics
                .worker_cycle
                .observe(started.elapsed().as_secs_f64());
        }
        tracing::info!(
            passes = passes.len(),
            "worker stopping: finishing the passes under way"
        );
        while let Some(done) = passes.join_next().await {
            if let Err(e) = done {
                tracing::error!(error = %e, "a tenant's pass died");
            }
        }
    }

    /// One pass over every tenant with unfinished jobs, waiting for all of
    /// them (tests drive the worker with it).
    pub async fn cycle(&self) -> anyhow::Result<()> {
        let mut passes = JoinSet::new();
        self.start_passes(&mut passes).await?;
        while let Some(done) = passes.join_next().await {
            if let Err(e) = done {
                tracing::error!(error = %e, "a tenant's pass died");
            }
        }
        Ok(())
    }

    /// Reads the unfinished jobs, takes or renews the leases of their
    /// tenants, and starts a pass for each tenant held that has none
    /// running.
    async fn start_passes(&self, passes: &mut JoinSet<()>) -> anyhow::Result<()> {
        let scan = self.jobs.store.active().await?;
        self.note_unreadable(scan.unreadable);
        // Grouped by borrowed names first: one key made per tenant, not per
        // job.
        let mut grouped: HashMap<(&str, &str), Vec<Arc<Job>>> = HashMap::new();
        for job in &scan.jobs {
            grouped
                .entry((job.cloud.as_str(), job.project_id.as_str()))
                .or_default()
                .push(job.clone());
        }
        let by_tenant: BTreeMap<TenantKey, Vec<Arc<Job>>> = grouped
            .into_iter()
            .map(|((cloud, project_id), jobs)| {
                let key = TenantKey {
                    cloud: cloud.to_owned(),
                    project_id: project_id.to_owned(),
                };
                (key, jobs)
            })
            .collect();
        let wanted = by_tenant.keys().cloned().collect();
        let busy = lock(&self.busy).clone();
        let mut fences = self.leases.claim(&wanted, &busy).await?;
        for (key, jobs) in by_tenant {
            let Some(fence) = fences.remove(&key) else {
                continue;
            };
            if !lock(&self.busy).insert(key.clone()) {
                continue;
            }
            let busy = Busy {
                set: self.busy.clone(),
                key: key.clone(),
            };
            let this = self.clone();
            passes.spawn(async move {
                let _busy = busy;
                let started = std::time::Instant::now();
                this.tenant_pass(&key, jobs, &fence).await;
                // Labelled by configured clouds only (jobs of a cloud gone
                // from the map still get passes until they end).
                if this.jobs.tenants_of(&key.cloud).next().is_some() {
                    crate::metrics::metrics()
                        .worker_pass
                        .get_or_create(&crate::metrics::TenantLabels {
                            tenant: key.cloud.clone(),
                        })
                        .observe(started.elapsed().as_secs_f64());
                }
            });
        }
        Ok(())
    }

    /// Logs each unreadable row once and keeps the set for readiness.
    fn note_unreadable(&self, rows: Vec<(String, String)>) {
        let mut known = lock(&self.unreadable);
        let now_unreadable: BTreeMap<String, String> = rows.into_iter().collect();
        for (id, reason) in &now_unreadable {
            if !known.contains_key(id) {
                tracing::error!(job_id = %id, %reason, "skipping an unreadable job row; the other jobs carry on");
            }
        }
        *known = now_unreadable;
    }

    async fn tenant_pass(&self, tenant: &TenantKey, jobs: Vec<Arc<Job>>, fence: &Fence) {
        let cloud = tenant.cloud.as_str();
        // Jobs are worked in their own project: an entry that now acts for
        // another one cannot see their backups (they would look deleted).
        let project = self.jobs.cinder.project_id(cloud).await;
        if let Ok(current) = &project
            && current != &tenant.project_id
        {
            self.project_changed(cloud, current, jobs, fence).await;
            return;
        }
        let at = now();
        let (running, queued): (Vec<Arc<Job>>, Vec<Arc<Job>>) =
            jobs.into_iter().partition(|j| j.state == JobState::Running);
        match project {
            // Without the tenant's token nothing can be learnt of its
            // backups; running jobs still end once they have waited too
            // long. Queued jobs go on below: each ends by its own rules (the
            // token failure is remembered, so this costs Keystone nothing).
            Err(e) => self.fail_if_stuck(&running, &e, fence).await,
            Ok(_) if !running.is_empty() => self.follow_running(cloud, running, fence).await,
            Ok(_) => {}
        }
        let tenant_permits = Arc::new(Semaphore::new(self.limits.per_tenant.max(1)));
        let mut submissions = JoinSet::new();
        for job in queued.into_iter().filter(|j| is_due(j, at)) {
            let job = Arc::unwrap_or_clone(job);
            let jobs = self.jobs.clone();
            let global = self.permits.clone();
            let local = tenant_permits.clone();
            let fence = fence.clone();
            let span = tracing::info_span!("job", job_id = %job.id);
            submissions.spawn(tracing::Instrument::instrument(
                async move {
                    let (Ok(_local), Ok(_global)) =
                        (local.acquire_owned().await, global.acquire_owned().await)
                    else {
                        return;
                    };
                    // Stopping: no new submission starts (one under way ends,
                    // with its store write).
                    if jobs.is_stopping() {
                        return;
                    }
                    jobs.resubmit(job, &fence).await;
                },
                span,
            ));
        }
        while let Some(done) = submissions.join_next().await {
            if let Err(e) = done {
                tracing::error!(error = %e, "a submission task died");
            }
        }
    }

    async fn follow_running(&self, cloud: &str, running: Vec<Arc<Job>>, fence: &Fence) {
        let ctx = CallContext::default();
        let filter = BackupFilter {
            status: Some("creating".into()),
            ..Default::default()
        };
        let listed = {
            let Ok(_permit) = self.permits.acquire().await else {
                return;
            };
            self.jobs.cinder.list_backup_ids(cloud, &filter, &ctx).await
        };
        let creating: HashSet<String> = match listed {
            Ok(ids) => {
                crate::metrics::metrics()
                    .tenant_last_listing
                    .get_or_create(&crate::metrics::TenantLabels {
                        tenant: cloud.to_owned(),
                    })
                    .set(crate::metrics::unix_now());
                ids.into_iter().collect()
            }
            Err(e) => {
                // Without a complete listing nothing can be concluded, but
                // the stuck limit still holds.
                tracing::warn!(cloud, error = %e, "could not list creating backups; will retry");
                self.fail_if_stuck(&running, &e, fence).await;
                return;
            }
        };
        // Backups that left `creating` are read in one listing of the
        // tenant's most recently updated backups (a finished backup was
        // updated when it finished), not one call each; those it does not
        // hold (deleted, or pushed off its page) are read one by one.
        let left = running
            .iter()
            .filter(|j| j.backup_id.as_ref().is_some_and(|b| !creating.contains(b)))
            .count();
        let recent = if left == 0 {
            HashMap::new()
        } else {
            self.recently_updated(cloud, left, &ctx).await
        };
        // Finished jobs (and new estimates) are written together once the
        // tenant's backups are read: many finishing at once cost one store
        // commit, not one each.
        let mut ended = Vec::new();
        for job in running {
            // Stopping: the next start concludes the rest (what is already
            // concluded is written below).
            if self.jobs.is_stopping() {
                break;
            }
            let Some(backup_id) = job.backup_id.as_deref() else {
                continue;
            };
            if creating.contains(backup_id) {
                if self.is_stuck(&job) {
                    let problem = self.stuck(backup_id, "creating");
                    let mut job = Arc::unwrap_or_clone(job);
                    job.fail(problem);
                    ended.push(job);
                } else if let Some(revised) = self.revised_estimate(&job).await {
                    let mut job = Arc::unwrap_or_clone(job);
                    job.expected_completion_at = revised;
                    job.updated_at = crate::jobs::model::now();
                    ended.push(job);
                }
                continue;
            }
            let backup_id = backup_id.to_owned();
            let job = Arc::unwrap_or_clone(job);
            let span = tracing::info_span!("job", job_id = %job.id);
            let concluded = match recent.get(&backup_id) {
                Some(backup) => {
                    tracing::Instrument::instrument(self.outcome_of(cloud, job, backup, &ctx), span)
                        .await
                }
                None => {
                    let Ok(_permit) = self.permits.acquire().await else {
                        break;
                    };
                    tracing::Instrument::instrument(
                        self.conclude(cloud, job, &backup_id, &ctx, fence),
                        span,
                    )
                    .await
                }
            };
            ended.extend(concluded);
        }
        if !ended.is_empty() {
            self.jobs.save_all_fenced(&mut ended, Some(fence)).await;
        }
    }

    /// A new expected completion for a job still `creating`: for one past
    /// its estimate, from the slowest similar backup, or none once past
    /// that too; for one without an estimate (started before its tenant's
    /// history was read, or before it had a similar backup), the usual
    /// one, when it is still ahead. `None` when the estimate stands.
    async fn revised_estimate(&self, job: &Job) -> Option<Option<chrono::DateTime<chrono::Utc>>> {
        let now = crate::jobs::model::now();
        let estimates = &self.jobs.estimates;
        let store = self.jobs.store.as_ref();
        match job.expected_completion_at {
            Some(at) if at >= now => None,
            Some(_) => Some(
                estimates
                    .completion_of(store, job, true)
                    .await
                    .filter(|at| *at > now),
            ),
            // Past the slowest similar backup, the usual estimate is past
            // too: a job left without one stays so.
            None => estimates
                .completion_of(store, job, false)
                .await
                .filter(|at| *at > now)
                .map(Some),
        }
    }

    /// The tenant's `count` (and a few more) most recently updated backups,
    /// by id: one page where one call per backup would be `count`. Empty
    /// when they cannot be read (each is then read on its own).
    async fn recently_updated(
        &self,
        cloud: &str,
        count: usize,
        ctx: &CallContext,
    ) -> HashMap<String, openstack::Backup> {
        let wanted = count.saturating_add(RECENT_SLACK);
        let filter = BackupFilter {
            sort: Some("updated_at:desc"),
            page_size: Some(u32::try_from(wanted).unwrap_or(u32::MAX)),
            at_most: Some(wanted),
            ..Default::default()
        };
        let Ok(_permit) = self.permits.acquire().await else {
            return HashMap::new();
        };
        match self.jobs.cinder.list_backups(cloud, &filter, ctx).await {
            Ok(backups) => backups.into_iter().map(|b| (b.id.clone(), b)).collect(),
            Err(e) => {
                tracing::warn!(cloud, error = %e, "could not list the recently updated backups; reading them one by one");
                HashMap::new()
            }
        }
    }

    fn is_stuck(&self, job: &Job) -> bool {
        job.started_at
            .is_some_and(|started| started < ago(self.jobs.settings.stuck_after))
    }

    fn stuck(&self, backup_id: &str, status: &str) -> Problem {
        Problem::new(
            ProblemKind::BackupStuck,
            format!(
                "backup {backup_id} is still `{status}` after {}; it is left in Cinder for an operator to inspect",
                human(self.jobs.settings.stuck_after)
            ),
        )
    }

    /// The tenant's backups cannot be read now (`cause`): running jobs past
    /// the stuck limit end all the same. A passing failure is reported as
    /// the backup being stuck; a lasting one (credentials refused, tenant no
    /// longer configured) as itself, saying the backup may still finish.
    async fn fail_if_stuck(&self, running: &[Arc<Job>], cause: &openstack::Error, fence: &Fence) {
        for job in running.iter().filter(|j| self.is_stuck(j)) {
            let mut job = Job::clone(job);
            let backup_id = job.backup_id.as_deref().unwrap_or("(unknown)");
            let limit = human(self.jobs.settings.stuck_after);
            let problem = if cause.is_transient() {
                let mut problem = self.stuck(backup_id, "creating");
                problem.detail = format!(
                    "backup {backup_id} did not finish within {limit} (its status could not be read just now: {cause}); it is left in Cinder for an operator to inspect"
                );
                problem
            } else {
                let mut problem = upstream_problem(cause);
                problem.detail = format!(
                    "backup {backup_id} did not finish within {limit} and its status cannot be read: {}; it may still complete in Cinder",
                    problem.detail
                );
                problem
            };
            tracing::warn!(job_id = %job.id, error = %cause, "failing a job whose backup could not be followed");
            job.fail(problem);
            self.jobs.save_fenced(&mut job, Some(fence)).await;
        }
    }

    /// The cloud entry now acts for another project: the tenant's jobs in
    /// the old project end, saying so (their backups are not deleted).
    async fn project_changed(
        &self,
        cloud: &str,
        current: &str,
        jobs: Vec<Arc<Job>>,
        fence: &Fence,
    ) {
        for job in jobs {
            let mut job = Arc::unwrap_or_clone(job);
            let backup = match (&job.backup_id, job.posted_at) {
                (Some(id), _) => format!("; its backup {id} stays in project {}", job.project_id),
                (None, Some(_)) => {
                    format!("; a backup of it may exist in project {}", job.project_id)
                }
                (None, None) => String::new(),
            };
            job.fail(Problem::new(
                ProblemKind::TenantProjectChanged,
                format!(
                    "the clouds.yaml entry `{cloud}` now acts for project {current}, not this job's project {}, so the job cannot be followed{backup}",
                    job.project_id
                ),
            ));
            tracing::warn!(job_id = %job.id, cloud, project_id = %current, "the job's cloud entry acts for another project; failing the job");
            self.jobs.save_fenced(&mut job, Some(fence)).await;
        }
    }

    /// The backup left `creating`: read it once to learn how it ended. The
    /// job as it ended, for the caller to write; `None` when it goes on.
    async fn conclude(
        &self,
        cloud: &str,
        mut job: Job,
        backup_id: &str,
        ctx: &CallContext,
        fence: &Fence,
    ) -> Option<Job> {
        match self.jobs.cinder.show_backup(cloud, backup_id, ctx).await {
            Ok(backup) => self.outcome_of(cloud, job, &backup, ctx).await,
            Err(openstack::Error::Cinder { status: 404, .. }) => {
                job.fail(deleted(backup_id));
                tracing::info!(job_id = %job.id, backup_id, state = job.state.as_str(), "job finished");
                Some(job)
            }
            Err(e) => {
                tracing::warn!(job_id = %job.id, backup_id, error = %e, "could not read the backup; will retry");
                if self.is_stuck(&job) {
                    self.fail_if_stuck(&[Arc::new(job)], &e, fence).await;
                }
                None
            }
        }
    }

    /// How the job ends, given its backup as Cinder shows it now; `None`
    /// when it goes on.
    async fn outcome_of(
        &self,
        cloud: &str,
        mut job: Job,
        backup: &openstack::Backup,
        ctx: &CallContext,
    ) -> Option<Job> {
        let backup_id = backup.id.as_str();
        match backup.status.as_str() {
            "available" => job.succeed(),
            "error" => {
                let snapshot = self
                    .jobs
                    .cinder
                    .show_snapshot(cloud, &job.snapshot_id, ctx)
                    .await
                    .ok();
                let problem = backup_failed(backup.fail_reason.as_deref())
                    .with_upstream(None, backup.request_id.clone());
                job.fail(with_stuck_snapshot_note(
                    problem,
                    snapshot.as_ref().map(|s| s.status.as_str()),
                ));
            }
            "deleting" | "error_deleting" | "deleted" => job.fail(deleted(backup_id)),
            // `creating` again (listed a moment too early), `restoring` or a
            // status this version does not know: not finished, but bound by
            // the stuck limit like `creating`.
            other => {
                if !self.is_stuck(&job) {
                    return None;
                }
                job.fail(self.stuck(backup_id, other));
            }
        }
        tracing::info!(job_id = %job.id, backup_id, state = job.state.as_str(), "job finished");
        Some(job)
    }
}

fn deleted(backup_id: &str) -> Problem {
    Problem::new(
        ProblemKind::BackupDeleted,
        format!("backup {backup_id} was deleted outside the gateway before it completed"),
    )
}

/// A failed backup may leave its snapshot `backing-up` (Cinder does this for
/// some failures and only an admin can reset it): say so on the job.
fn with_stuck_snapshot_note(mut problem: Problem, snapshot_status: Option<&str>) -> Problem {
    if snapshot_status == Some("backing-up") {
        problem.detail.push_str(
            "; Cinder left the snapshot `backing-up`, so it cannot be backed up again until an administrator resets its status to `available`",
        );
    }
    problem
}

/// The problem of a backup that ended in Cinder's `error` status.
fn backup_failed(fail_reason: Option<&str>) -> Problem {
    Problem::new(
        ProblemKind::BackupFailed,
        format!(
            "Cinder reports the backup failed: {}",
            fail_reason.unwrap_or("no reason given")
        ),
    )
}
