//! The job: one backup request followed from the store write to Cinder's
//! verdict. States and transitions as DESIGN.md describes them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::problem::Problem;

/// A job's id: a UUIDv7, so ids sort by creation time (newest-first listing
/// and page tokens rely on it).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(transparent)]
#[schema(value_type = String, format = Uuid)]
pub struct JobId(pub Uuid);

impl JobId {
    /// A new, time-ordered id.
    pub fn new() -> Self {
        JobId(Uuid::now_v7())
    }
}

impl Default for JobId {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for JobId {
    type Err = uuid::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::try_parse(s).map(JobId)
    }
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Recorded; Cinder has not accepted the backup yet (or the answer was lost).
    Queued,
    /// Cinder accepted the backup; it is `creating`.
    Running,
    /// The backup is `available`.
    Succeeded,
    /// The backup failed, was refused, or vanished; `error` says why.
    Failed,
    /// Cancelled before Cinder had it.
    Cancelled,
}

impl JobState {
    /// Every state, for parsing and documentation.
    pub const ALL: [JobState; 5] = [
        JobState::Queued,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
    ];

    /// True in the three terminal states.
    pub fn is_done(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        )
    }

    /// The lowercase name used in the API and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }
}

impl std::str::FromStr for JobState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "`{s}` is not a job state (one of {})",
                    JobState::ALL.map(JobState::as_str).join(", ")
                )
            })
    }
}

/// What the caller asked for: the optional fields of the create call, as
/// they are passed to Cinder.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BackupOptions {
    /// Backup name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Backup description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Incremental backup (Cinder needs an earlier available backup of the volume).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incremental: Option<bool>,
    /// Passed to Cinder as `force`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force: Option<bool>,
    /// Extra backup metadata (the key `gateway_job_id` is the gateway's).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Availability zone of the backup (Cinder microversion 3.51).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    /// Object-store container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Where this job's events are delivered as webhooks (not passed to
    /// Cinder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Job id (also in the backup's metadata as `gateway_job_id`).
    pub id: JobId,
    /// Keystone project id of the tenant: the key of tenant isolation.
    pub project_id: String,
    /// The clouds.yaml entry whose credentials act for the tenant.
    pub cloud: String,
    /// The snapshot backed up.
    pub snapshot_id: String,
    /// The snapshot's volume.
    pub volume_id: String,
    /// The backup, once Cinder accepted it.
    pub backup_id: Option<String>,
    /// What the caller asked for.
    pub options: BackupOptions,
    /// Current state.
    pub state: JobState,
    /// Why it failed, or the last transient failure while `queued`.
    pub error: Option<Problem>,
    /// Submissions to Cinder tried so far.
    pub attempts: u32,
    /// When the worker may try a `queued` job again.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// `x-openstack-request-id` of the last Cinder call that changed the job.
    pub upstream_request_id: Option<String>,
    /// Recorded.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Cinder accepted the backup.
    pub started_at: Option<DateTime<Utc>>,
    /// Reached a terminal state.
    pub finished_at: Option<DateTime<Utc>>,
    /// When a POST of this job may have reached Cinder, until Cinder refused
    /// it or a complete listing of the volume's backups showed it made
    /// nothing. While set, the job is never posted again, failed or
    /// cancelled without such a listing.
    pub posted_at: Option<DateTime<Utc>>,
    /// Row version: every store write is compare-and-set on it.
    pub version: i64,
    /// True once the id was shown to anyone but the request that created
    /// the job: from then on the job is never removed.
    pub shown: bool,
    /// The snapshot's size in GiB, as Cinder gave it at the create.
    pub size_gib: Option<u64>,
    /// While running: when the backup is expected to complete (see
    /// `jobs::estimates`); `None` without an estimate.
    pub expected_completion_at: Option<DateTime<Utc>>,
}

impl Job {
    /// A new `queued` job.
    pub fn new(
        project_id: String,
        cloud: String,
        snapshot_id: String,
        volume_id: String,
        options: BackupOptions,
    ) -> Self {
        let now = now();
        Job {
            id: JobId::new(),
            project_id,
            cloud,
            snapshot_id,
            volume_id,
            backup_id: None,
            options,
            state: JobState::Queued,
            error: None,
            attempts: 0,
            next_attempt_at: Some(now),
            upstream_request_id: None,
            created_at: now,
            updated_at: now,
            started_at: None,
            finished_at: None,
            posted_at: None,
            version: 0,
            shown: false,
            size_gib: None,
            expected_completion_at: None,
        }
    }

    /// Cancelled before Cinder had it.
    pub fn cancel(&mut self) {
        self.finish(JobState::Cancelled, None);
    }

    /// Cinder accepted the backup.
    pub fn start(&mut self, backup_id: String, request_id: Option<String>) {
        let now = now();
        self.state = JobState::Running;
        self.backup_id = Some(backup_id);
        self.upstream_request_id = request_id.or(self.upstream_request_id.take());
        self.error = None;
        self.posted_at = None;
        self.next_attempt_at = None;
        self.started_at = Some(now);
        self.updated_at = now;
    }

    /// The backup is `available`.
    pub fn succeed(&mut self) {
        self.finish(JobState::Succeeded, None);
    }

    /// The job ends in `failed` with `problem`.
    pub fn fail(&mut self, problem: Problem) {
        self.finish(JobState::Failed, Some(problem));
    }

    fn finish(&mut self, state: JobState, error: Option<Problem>) {
        let now = now();
        self.state = state;
        self.error = error;
        self.next_attempt_at = None;
        self.expected_completion_at = None;
        self.finished_at = Some(now);
        self.updated_at = now;
    }

    /// A submission failed transiently: try again at `next`.
    pub fn retry_at(&mut self, problem: Problem, next: DateTime<Utc>) {
        self.error = Some(problem);
        self.next_attempt_at = Some(next);
        self.updated_at = now();
    }
}

/// The current time, truncated to milliseconds: what the store keeps, so a
/// job read back equals the job written.
pub fn now() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now)
}

/// `d` from now; the far future when that is past what a time can hold.
pub fn after(d: std::time::Duration) -> DateTime<Utc> {
    later(now(), d)
}

/// `d` after `at`; the far future when that is past what a time can hold.
pub fn later(at: DateTime<Utc>, d: std::time::Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| at.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// `d` before now; the distant past when that is before what a time can hold.
pub fn ago(d: std::time::Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| now().checked_sub_signed(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// A duration in the largest whole unit: `24h`, `90s`.
pub fn human(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => format!("{}ms", d.as_millis()),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}
