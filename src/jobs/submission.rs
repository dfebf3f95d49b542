//! Submitting backups: the create call (store first, then Cinder, then the
//! store again) and the worker's re-submission of `queued` jobs.
//!
//! The rule that keeps every accepted request to one backup: before each
//! POST the job is written with `posted_at` set (compare-and-set, so a
//! racing cancel has one winner), and while `posted_at` is set the job is
//! never posted again, failed or cancelled without a complete listing of
//! the volume's backups (which finds the backup by the job id in its
//! metadata). A failed listing is not a submission attempt.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::Mutex;
use tracing::Instrument;

use super::{
    error::{Error, upstream_problem},
    idempotency::{self, KeyClaim},
    model::{BackupOptions, Job, JobState, after, ago, human, later, now},
    service::Jobs,
    validation::{check_snapshot_id, validate_options},
};
use crate::{
    openstack::{self, CallContext, NewBackup},
    problem::{Problem, ProblemKind},
    store::{self, Fence, KeyUse},
};

/// The metadata key that carries the job id on the backup: how a job finds
/// its backup again after a lost answer or a crash.
pub const JOB_ID_METADATA_KEY: &str = "gateway_job_id";

/// How one POST to Cinder ended.
enum Posted {
    /// Cinder has the backup; the job is `running` (not yet saved).
    Accepted,
    /// Cinder refused for good; nothing was made.
    Refused(openstack::Error),
    /// Outcome unknown or failure passing: try again later.
    Unclear(openstack::Error),
}

/// Who answers the caller of a create: the submission, while the caller
/// waits for its verdict, or the handler with the recorded job once the
/// request's budget has run out. A job refused while its caller waits is
/// removed (the caller gets the refusal); once the caller has been answered
/// with the job, it is never removed. The phase changes under a lock, so the
/// two never both answer.
#[derive(Default)]
struct Answer(Mutex<Phase>);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Phase {
    /// The caller waits for the submission's verdict.
    #[default]
    Waiting,
    /// The submission reached its verdict: the caller gets it.
    Decided,
    /// The caller was answered with the job `queued`.
    AnsweredQueued,
}

/// The idempotency key a create holds, owned (it outlives the handler in
/// the submission task).
#[derive(Clone)]
struct HeldKey {
    project_id: String,
    key: String,
    reserved_at: DateTime<Utc>,
}

impl HeldKey {
    fn as_use(&self) -> KeyUse<'_> {
        KeyUse {
            project_id: &self.project_id,
            key: &self.key,
            reserved_at: self.reserved_at,
        }
    }
}

impl Jobs {
    /// Creates a backup of a snapshot: checks the request, reads the
    /// snapshot, records a `queued` job, then submits it to Cinder.
    ///
    /// A definitive refusal by Cinder while the caller waits leaves no job
    /// behind and is returned as the error. An unclear outcome, or Cinder
    /// slower than the request's budget, returns the job `queued`; the
    /// worker finds out what happened and retries. With an idempotency key,
    /// a request already answered is answered the same job again.
    #[tracing::instrument(skip_all, fields(tenant, snapshot_id, job_id))]
    pub async fn submit(
        self: &Arc<Self>,
        tenant: &str,
        snapshot_id: &str,
        options: BackupOptions,
        idempotency_key: Option<&str>,
        ctx: CallContext,
    ) -> Result<Job, Error> {
        let deadline = tokio::time::Instant::now() + self.settings.submit_budget;
        check_snapshot_id(snapshot_id)?;
        validate_options(&options)?;
        let (cloud, project_id) = self.tenant(tenant).await?;
        let Some(key) = idempotency_key else {
            return self
                .create(cloud, project_id, snapshot_id, options, None, ctx, deadline)
                .await;
        };
        let request = idempotency::canonical_request(snapshot_id, &options);
        let held = match self.claim_key(&project_id, key, &request).await? {
            KeyClaim::Replay(job) => {
                self.shown(std::slice::from_ref(&job)).await;
                return Ok(*job);
            }
            KeyClaim::Fresh(reserved_at) => HeldKey {
                project_id: project_id.clone(),
                key: key.to_owned(),
                reserved_at,
            },
        };
        let created = self
            .create(
                cloud,
                project_id,
                snapshot_id,
                options,
                Some(held.clone()),
                ctx,
                deadline,
            )
            .await;
        let settled = match &created {
            Ok(_) => self.store.mark_key_answered(held.as_use()).await,
            // Nothing recorded (or the job was removed with its key): the
            // key is free for a retry of the same request.
            Err(_) => self.store.release_key(held.as_use()).await,
        };
        if let Err(e) = settled {
            tracing::warn!(error = %e, "could not settle the idempotency key");
        }
        created
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "the parts of one create, each used once"
    )]
    async fn create(
        self: &Arc<Self>,
        cloud: String,
        project_id: String,
        snapshot_id: &str,
        options: BackupOptions,
        key: Option<HeldKey>,
        ctx: CallContext,
        deadline: tokio::time::Instant,
    ) -> Result<Job, Error> {
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
                return Err(self.busy(&active).await);
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
                finished: true,
                message: "reading the snapshot took the whole request time; nothing was recorded"
                    .into(),
                status: None,
                request_id: None,
            }));
        }
        let mut job = Job::new(project_id, cloud, snapshot.id, snapshot.volume_id, options);
        job.size_gib = snapshot.size;
        // Recorded already claimed for its first POST, which this request
        // makes at once: one write fewer than recording, then claiming. Not
        // due for the worker of any replica until that POST has settled;
        // should this process die before or during it, the worker lists
        // the volume's backups before it posts again.
        self.claim(&mut job);
        tracing::Span::current().record("job_id", tracing::field::display(job.id));
        self.open_callback(&job).await?;
        match self
            .store
            .insert(&job, key.as_ref().map(HeldKey::as_use))
            .await
        {
            // Its events stream out from here.
            Ok(()) => self.notify(&job),
            Err(store::Error::ActiveJobExists) => {
                self.drop_callback(&job).await;
                let active = self
                    .store
                    .active_for_snapshot(&job.project_id, &job.snapshot_id)
                    .await?;
                return Err(match active {
                    Some(active) => self.busy(&active).await,
                    // The other job finished in between: report it as busy anyway;
                    // a retry by the caller will go through.
                    None => Error::Store(store::Error::ActiveJobExists),
                });
            }
            Err(e) => {
                self.drop_callback(&job).await;
                return Err(e.into());
            }
        }
        // The submission runs in a task of its own: axum drops a handler's
        // future when the client goes away, and that must never cut between
        // Cinder's 202 and the store write that records it.
        let recorded = job.clone();
        let answer = Arc::new(Answer::default());
        let this = self.clone();
        let handoff = answer.clone();
        // In the request's span, so its lines carry the request id, the
        // tenant and the job id.
        let mut submission = tokio::spawn(
            async move { this.first_submission(job, key, ctx, handoff).await }
                .instrument(tracing::Span::current()),
        );
        // The caller waits for Cinder's verdict only while the request's
        // budget lasts: past it, the job is answered as recorded (`queued`)
        // and the submission carries on, rather than a timeout answering an
        // error for a job that exists.
        let joined = match tokio::time::timeout_at(deadline, &mut submission).await {
            Ok(joined) => joined,
            Err(_) => {
                let mut phase = answer.0.lock().await;
                if *phase == Phase::Decided {
                    // It reached its verdict as the budget ran out: that stands.
                    drop(phase);
                    submission.await
                } else {
                    *phase = Phase::AnsweredQueued;
                    tracing::warn!(job_id = %recorded.id, "Cinder is slow to answer; the job is answered queued");
                    return Ok(recorded);
                }
            }
        };
        joined.map_err(|e| Error::Internal(format!("submission task: {e}")))?
    }

    async fn first_submission(
        self: Arc<Self>,
        mut job: Job,
        key: Option<HeldKey>,
        ctx: CallContext,
        answer: Arc<Answer>,
    ) -> Result<Job, Error> {
        // Claimed when it was recorded (see `create`).
        let posted = self.send(&mut job, &ctx).await;
        let mut phase = answer.0.lock().await;
        let answered = *phase == Phase::AnsweredQueued;
        if !answered {
            *phase = Phase::Decided;
        }
        match posted {
            // Once the job is recorded, the caller is answered the job,
            // never an error: as stored, or as recorded if the store fails.
            Posted::Accepted => {
                self.save(&mut job).await;
                Ok(job)
            }
            Posted::Refused(e) => {
                if !answered {
                    // Refused at once: the caller gets Cinder's answer and no
                    // job is left behind.
                    match self
                        .store
                        .delete(job.id, job.version, key.as_ref().map(HeldKey::as_use))
                        .await
                    {
                        Ok(true) => {
                            self.notify(&job);
                            self.drop_callback(&job).await;
                            return Err(snapshot_error(&job.snapshot_id, e));
                        }
                        Ok(false) => {}
                        Err(store_error) => {
                            tracing::error!(job_id = %job.id, error = %store_error, "could not remove a refused job; marking it failed");
                        }
                    }
                }
                // Its id was answered or shown (or it could not be
                // removed): it must not stay `queued`, the worker would
                // submit what Cinder refused. It ends failed with Cinder's
                // reason, and a caller still waiting is answered that job.
                job.fail(upstream_problem(&e));
                self.save(&mut job).await;
                Ok(job)
            }
            Posted::Unclear(e) => {
                self.schedule_retry(&mut job, &e);
                self.save(&mut job).await;
                Ok(job)
            }
        }
    }

    /// The worker's turn at a `queued` job, under the tenant's lease
    /// (`fence`): settle a POST that may have reached Cinder (adopt its
    /// backup, or learn that it made none), then post again, or give up once
    /// out of attempts.
    pub(super) async fn resubmit(self: &Arc<Self>, job: Job, fence: &Fence) {
        // Read again: the copy the cycle listed may be stale (a submission
        // may have ended in between), and acting on it would be wasted
        // work. Every write below is compare-and-set on this read.
        let mut job = match self.store.get(job.id).await {
            Ok(Some(current)) if is_due(&current, now()) => current,
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(job_id = %job.id, error = %e, "could not read the job again; will retry");
                return;
            }
        };
        let ctx = CallContext::default();
        let earlier_post = job.posted_at;
        if let Some(posted_at) = earlier_post {
            match self.find_backup(&job, &ctx).await {
                Ok(Some(backup_id)) => {
                    tracing::info!(job_id = %job.id, backup_id, "adopted the backup already made for this job");
                    job.start(backup_id, None);
                    // Cinder has had it since that POST, not since now: the
                    // estimate, and the duration the job will count for the
                    // tenant's later estimates, start there.
                    job.started_at = Some(posted_at);
                    self.estimate(&mut job);
                    self.save_fenced(&mut job, Some(fence)).await;
                    return;
                }
                // A complete listing shows that no POST of this job made a
                // backup: it may be posted again.
                Ok(None) => job.posted_at = None,
                Err(e) => {
                    self.listing_failed(&mut job, posted_at, &e);
                    self.save_fenced(&mut job, Some(fence)).await;
                    return;
                }
            }
        }
        if job.attempts >= self.settings.submit_attempts {
            job.fail(self.gave_up(&job));
            self.save_fenced(&mut job, Some(fence)).await;
            return;
        }
        // Not claimed: the job changed since it was read (cancelled, or
        // taken by another writer), or its claim could not be written.
        let Some(posted) = self.post(&mut job, &ctx, Some(fence)).await else {
            return;
        };
        match posted {
            Posted::Accepted => {}
            Posted::Refused(e) if !e.is_snapshot_not_available() => job.fail(upstream_problem(&e)),
            // A snapshot still `backing-up` may be the work of an earlier
            // POST of ours that Cinder has not listed yet: that POST's
            // outcome is still open, so look again later.
            Posted::Refused(e) => {
                job.posted_at = earlier_post;
                self.schedule_retry(&mut job, &e);
            }
            Posted::Unclear(e) => self.schedule_retry(&mut job, &e),
        }
        self.save_fenced(&mut job, Some(fence)).await;
    }

    /// The volume's backups could not be listed while a POST of the job may
    /// have reached Cinder: look again later (not an attempt), and after
    /// `--stuck-after` without a listing end the job saying so.
    fn listing_failed(&self, job: &mut Job, posted_at: DateTime<Utc>, e: &openstack::Error) {
        let limit = self.settings.stuck_after;
        if posted_at < ago(limit) {
            tracing::warn!(job_id = %job.id, error = %e, "the job's outcome stayed unknown too long; failing it");
            let cause = upstream_problem(e);
            job.fail(
                Problem::new(
                    ProblemKind::OutcomeUnknown,
                    format!(
                        "whether Cinder made this job's backup is unknown: a request for it may have reached Cinder, and the backups of volume {} could not be listed for {} ({}); a backup with metadata {JOB_ID_METADATA_KEY}={} may exist",
                        job.volume_id,
                        human(limit),
                        cause.detail,
                        job.id
                    ),
                )
                .with_upstream(cause.upstream_status, cause.upstream_request_id),
            );
            return;
        }
        tracing::warn!(job_id = %job.id, error = %e, "could not list the volume's backups; will look again");
        // The longer the listings have failed, the longer the wait (half the
        // time since the POST, within the retry bounds): an outage of hours
        // does not cost a listing per job every few seconds.
        let failing_for = (now() - posted_at).to_std().unwrap_or_default();
        let delay = (failing_for / 2)
            .clamp(self.settings.retry_base, self.settings.retry_max)
            .mul_f64(0.5 + fastrand::f64() / 2.0);
        job.retry_at(upstream_problem(e), after(delay));
    }

    /// The problem of a job out of attempts, from its last failure.
    fn gave_up(&self, job: &Job) -> Problem {
        let mut problem = job.error.clone().unwrap_or_else(|| {
            Problem::new(
                ProblemKind::UpstreamUnavailable,
                "Cinder did not accept the backup",
            )
        });
        problem.detail = format!(
            "gave up after {} attempts: {}",
            job.attempts, problem.detail
        );
        problem
    }

    /// Claims the job for a POST (written before the call, so that a crash
    /// or a lost answer is never taken for "not posted", and a racing cancel
    /// has one winner), then posts the backup with the job id in its
    /// metadata.
    /// The worker's claim carries its lease (`fence`): a replica that lost
    /// the tenant cannot claim, so it never posts. `None` when the claim
    /// was not written (nothing was posted).
    async fn post(
        &self,
        job: &mut Job,
        ctx: &CallContext,
        fence: Option<&Fence>,
    ) -> Option<Posted> {
        self.claim(job);
        if !self.save_fenced(job, fence).await {
            return None;
        }
        Some(self.send(job, ctx).await)
    }

    /// Marks `job` as posted now, a claim written before every POST: one
    /// more attempt, and a POST that may reach Cinder. Should this process
    /// die during the POST, the next one must not list before Cinder is
    /// done with it; any outcome seen replaces that next look.
    fn claim(&self, job: &mut Job) {
        let posted_at = now();
        job.attempts += 1;
        job.posted_at = Some(posted_at);
        job.updated_at = posted_at;
        job.next_attempt_at = Some(self.settled_at(posted_at));
    }

    /// The POST of a claimed job, and what its answer means for the job.
    async fn send(&self, job: &mut Job, ctx: &CallContext) -> Posted {
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
                self.estimate(job);
                Posted::Accepted
            }
            Err(e) if e.is_transient() => {
                if e.cannot_have_created() {
                    // Failed before the POST was sent: nothing to look for,
                    // and the job may still be cancelled.
                    job.posted_at = None;
                }
                tracing::warn!(job_id = %job.id, error = %e, "backup submission unclear; will retry");
                Posted::Unclear(e)
            }
            Err(e) => {
                tracing::info!(job_id = %job.id, error = %e, "Cinder refused the backup");
                job.posted_at = None;
                Posted::Refused(e)
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

    /// The conflict naming the snapshot's unfinished job (whose id it shows).
    async fn busy(&self, active: &Job) -> Error {
        self.shown(std::slice::from_ref(active)).await;
        Error::SnapshotBusy {
            snapshot_id: active.snapshot_id.clone(),
            job_id: active.id.to_string(),
        }
    }

    /// Schedules the next try after a transient failure. When Cinder may
    /// still be working on a POST (no answer, or only a proxy's), the
    /// listing that decides whether to post again waits until twice the
    /// upstream time limit after the POST: the time limit itself, then as
    /// long again for Cinder to finish what it was doing.
    fn schedule_retry(&self, job: &mut Job, e: &openstack::Error) {
        let delay = crate::jobs::backoff(
            job.attempts,
            self.settings.retry_base,
            self.settings.retry_max,
        );
        let mut next = after(delay);
        if let Some(posted_at) = job.posted_at
            && e.may_still_be_working()
        {
            next = next.max(self.settled_at(posted_at));
        }
        job.retry_at(upstream_problem(e), next);
    }

    /// Sets when the job, just started, is expected to complete (from the
    /// history in memory: no store read between Cinder's answer and the
    /// job's write).
    fn estimate(&self, job: &mut Job) {
        job.expected_completion_at = self.estimates.completion_now(&self.store, job);
    }

    /// When a POST sent at `posted_at` that got no answer from Cinder
    /// itself is surely over: it may run for the upstream time limit, and
    /// Cinder may go on for as long again after the gateway stopped waiting.
    fn settled_at(&self, posted_at: DateTime<Utc>) -> DateTime<Utc> {
        later(posted_at, self.settings.upstream_timeout.saturating_mul(2))
    }
}

/// A snapshot read's 404 is "no such snapshot in your tenant".
pub(super) fn snapshot_error(snapshot_id: &str, e: openstack::Error) -> Error {
    match e {
        openstack::Error::Cinder { status: 404, .. } => Error::SnapshotNotFound {
            id: snapshot_id.to_owned(),
            source: Some(e),
        },
        other => Error::Upstream(other),
    }
}

/// When the worker should look at a queued job again.
pub(super) fn is_due(job: &Job, at: DateTime<Utc>) -> bool {
    job.state == JobState::Queued && job.next_attempt_at.is_none_or(|t| t <= at)
}
