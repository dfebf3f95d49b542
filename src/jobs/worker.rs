//! The worker: follows running jobs to their end and retries queued ones.
//!
//! Each cycle costs Cinder a number of calls that grows with tenants (and
//! result pages), not with jobs: per tenant one listing of its `creating`
//! backups; a running job whose backup is absent from a complete listing has
//! finished, and is read once to learn how.

use std::{
    collections::{BTreeMap, HashSet},
    sync::Arc,
    time::Duration,
};

use tokio::task::JoinSet;

use super::{
    model::{Job, JobState, now},
    service::{Jobs, backup_failed, is_due, with_stuck_snapshot_note},
};
use crate::{
    openstack::{BackupFilter, CallContext},
    problem::{Problem, ProblemKind},
};

/// Runs cycles of job reconciliation.
#[derive(Clone)]
pub struct Worker {
    jobs: Arc<Jobs>,
}

impl Worker {
    /// A worker over the job service.
    pub fn new(jobs: Arc<Jobs>) -> Self {
        Worker { jobs }
    }

    /// Runs a cycle every `interval` until the task is dropped. Jobs left in
    /// the store by an earlier process are picked up at the first cycle.
    pub async fn run(self, interval: Duration) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if let Err(e) = self.cycle().await {
                tracing::error!(error = %e, "worker cycle failed");
            }
        }
    }

    /// One pass over every unfinished job, tenants in parallel.
    pub async fn cycle(&self) -> anyhow::Result<()> {
        let active = self.jobs.store.active().await?;
        let mut by_tenant: BTreeMap<(String, String), Vec<Job>> = BTreeMap::new();
        for job in active {
            by_tenant
                .entry((job.cloud.clone(), job.project_id.clone()))
                .or_default()
                .push(job);
        }
        let mut tasks = JoinSet::new();
        for ((cloud, _), jobs) in by_tenant {
            let this = self.clone();
            tasks.spawn(async move { this.tenant_cycle(&cloud, jobs).await });
        }
        while let Some(done) = tasks.join_next().await {
            if let Err(e) = done {
                tracing::error!(error = %e, "worker task died");
            }
        }
        Ok(())
    }

    async fn tenant_cycle(&self, cloud: &str, jobs: Vec<Job>) {
        let at = now();
        let (running, queued): (Vec<Job>, Vec<Job>) =
            jobs.into_iter().partition(|j| j.state == JobState::Running);
        if !running.is_empty() {
            self.follow_running(cloud, running).await;
        }
        for job in queued.into_iter().filter(|j| is_due(j, at)) {
            self.jobs.resubmit(job).await;
        }
    }

    async fn follow_running(&self, cloud: &str, running: Vec<Job>) {
        let ctx = CallContext::default();
        let filter = BackupFilter {
            status: Some("creating".into()),
            ..Default::default()
        };
        let creating: HashSet<String> = match self
            .jobs
            .cinder
            .list_backups(cloud, &filter, &ctx)
            .await
        {
            Ok(backups) => backups.into_iter().map(|b| b.id).collect(),
            Err(e) => {
                // Without a complete listing nothing can be concluded.
                tracing::warn!(cloud, error = %e, "could not list creating backups; will retry");
                return;
            }
        };
        let stuck_after = chrono::Duration::from_std(self.jobs.settings.stuck_after)
            .unwrap_or(chrono::Duration::MAX);
        for mut job in running {
            let Some(backup_id) = job.backup_id.clone() else {
                continue;
            };
            if creating.contains(&backup_id) {
                if job.started_at.is_some_and(|s| now() - s > stuck_after) {
                    job.fail(Problem::new(
                        ProblemKind::BackupStuck,
                        format!(
                            "backup {backup_id} is still `creating` after {}; it is left in Cinder for an operator to inspect",
                            crate::jobs::model::human(self.jobs.settings.stuck_after)
                        ),
                    ));
                    self.jobs.save(&job, JobState::Running).await;
                }
                continue;
            }
            self.conclude(cloud, job, &backup_id, &ctx).await;
        }
    }

    /// The backup left `creating`: read it once to learn how it ended.
    async fn conclude(&self, cloud: &str, mut job: Job, backup_id: &str, ctx: &CallContext) {
        match self.jobs.cinder.show_backup(cloud, backup_id, ctx).await {
            Ok(backup) => match backup.status.as_str() {
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
                // `creating` again (listed a moment too early) or `restoring`:
                // not finished, look next cycle.
                _ => return,
            },
            Err(crate::openstack::Error::Cinder { status: 404, .. }) => {
                job.fail(deleted(backup_id))
            }
            Err(e) => {
                tracing::warn!(job_id = %job.id, backup_id, error = %e, "could not read the backup; will retry");
                return;
            }
        }
        tracing::info!(job_id = %job.id, backup_id, state = job.state.as_str(), "job finished");
        self.jobs.save(&job, JobState::Running).await;
    }
}

fn deleted(backup_id: &str) -> Problem {
    Problem::new(
        ProblemKind::BackupDeleted,
        format!("backup {backup_id} was deleted outside the gateway before it completed"),
    )
}
