//! Errors of the job operations, and how upstream failures become problems.

use crate::{
    openstack,
    problem::{Problem, ProblemKind},
    store,
};

/// What a job operation can fail with. Every variant maps to one problem.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller's tenant is not in the tenant map.
    #[error("tenant `{}` is not configured in this gateway", crate::problem::echo(.0))]
    TenantNotConfigured(String),
    /// A request field is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// No such job in the caller's tenant.
    #[error("job {} not found", crate::problem::echo(.0))]
    JobNotFound(String),
    /// No such snapshot in the caller's tenant.
    #[error("snapshot {} not found", crate::problem::echo(id))]
    SnapshotNotFound {
        /// The snapshot asked for.
        id: String,
        /// Cinder's answer; none when the id cannot name a snapshot and
        /// Cinder was not asked.
        source: Option<openstack::Error>,
    },
    /// The job cannot be cancelled any more.
    #[error("job {job_id} is {state} and {reason}; it cannot be cancelled")]
    NotCancellable {
        /// The job.
        job_id: String,
        /// Its state.
        state: &'static str,
        /// Why not.
        reason: &'static str,
    },
    /// Another request with the same idempotency key is being answered.
    #[error("a request with this Idempotency-Key is still being answered; retry once it has been")]
    IdempotencyKeyInUse,
    /// The idempotency key was first used with another request.
    #[error(
        "this Idempotency-Key was first used with another request (path or body); use a new key for a new request"
    )]
    IdempotencyKeyReused,
    /// The snapshot is not `available`.
    #[error(
        "snapshot {} is {status}; only an available snapshot can be backed up",
        crate::problem::echo(id)
    )]
    SnapshotNotAvailable {
        /// The snapshot.
        id: String,
        /// Its status.
        status: String,
    },
    /// Another job of the snapshot is queued or running.
    #[error("snapshot {snapshot_id} already has a backup in progress (job {job_id})")]
    SnapshotBusy {
        /// The snapshot.
        snapshot_id: String,
        /// The job that holds it.
        job_id: String,
    },
    /// The tenant has this many event streams open, the most allowed.
    #[error(
        "this tenant already has the {0} event streams open that the gateway allows; close one, or retry after the time Retry-After gives"
    )]
    TooManyEventStreams(usize),
    /// Events after the one a client resumes from were purged.
    #[error(
        "events after {after} are no longer all kept (those up to {purged_through} were purged): list the jobs (GET /jobs) for their current state, then open the stream without Last-Event-ID"
    )]
    EventsExpired {
        /// The event the client resumed from.
        after: u64,
        /// Events up to this one may have been purged.
        purged_through: i64,
    },
    /// No such webhook subscription in the caller's tenant.
    #[error("webhook {} not found", crate::problem::echo(.0))]
    WebhookNotFound(String),
    /// The tenant has as many subscriptions as the gateway allows.
    #[error(
        "this tenant already has the {0} webhook subscriptions the gateway allows; delete one first"
    )]
    TooManyWebhooks(u32),
    /// A callback target outside the operator's allow-list.
    #[error("{0}")]
    TargetNotAllowed(String),
    /// Keystone or Cinder failed or refused.
    #[error(transparent)]
    Upstream(#[from] openstack::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// A bug: a task died.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The problem this error is reported as.
    pub fn problem(&self) -> Problem {
        match self {
            Error::TenantNotConfigured(_) => {
                Problem::new(ProblemKind::TenantNotConfigured, self.to_string())
            }
            Error::Invalid(message) => Problem::new(ProblemKind::InvalidRequest, message.clone()),
            Error::JobNotFound(_) => Problem::new(ProblemKind::JobNotFound, self.to_string()),
            Error::SnapshotNotFound { source, .. } => {
                let problem = Problem::new(ProblemKind::SnapshotNotFound, self.to_string());
                match source {
                    Some(source) => problem
                        .with_upstream(source.upstream_status(), source.upstream_request_id()),
                    None => problem,
                }
            }
            Error::NotCancellable { job_id, .. } => {
                Problem::new(ProblemKind::JobNotCancellable, self.to_string()).with_job(job_id)
            }
            Error::IdempotencyKeyInUse | Error::Store(store::Error::KeyLost) => {
                Problem::new(ProblemKind::IdempotencyKeyInUse, self.to_string())
            }
            Error::IdempotencyKeyReused => {
                Problem::new(ProblemKind::IdempotencyKeyReused, self.to_string())
            }
            Error::SnapshotNotAvailable { .. } => {
                Problem::new(ProblemKind::SnapshotNotAvailable, self.to_string())
            }
            Error::SnapshotBusy { job_id, .. } => {
                Problem::new(ProblemKind::SnapshotBusy, self.to_string()).with_job(job_id)
            }
            Error::TooManyEventStreams(_) => {
                Problem::new(ProblemKind::TooManyEventStreams, self.to_string())
            }
            Error::EventsExpired { .. } => {
                Problem::new(ProblemKind::EventsExpired, self.to_string())
            }
            Error::WebhookNotFound(_) => {
                Problem::new(ProblemKind::WebhookNotFound, self.to_string())
            }
            Error::TooManyWebhooks(_) => {
                Problem::new(ProblemKind::TooManyWebhooks, self.to_string())
            }
            Error::TargetNotAllowed(_) => {
                Problem::new(ProblemKind::WebhookTargetNotAllowed, self.to_string())
            }
            Error::Upstream(e) => upstream_problem(e),
            Error::Store(store::Error::ActiveJobExists) => Problem::new(
                ProblemKind::SnapshotBusy,
                "the snapshot already has a backup in progress",
            ),
            Error::Store(store::Error::Database(_)) => Problem::new(
                ProblemKind::StoreUnavailable,
                "the job store is unavailable; nothing was recorded, retry later",
            ),
            Error::Store(store::Error::Corrupt(_)) | Error::Internal(_) => Problem::new(
                ProblemKind::Internal,
                "internal error; the operator's logs have the details",
            ),
        }
    }

    /// True for failures that happen to everyone (not the caller's fault):
    /// they are logged at error level.
    pub fn is_server_side(&self) -> bool {
        self.problem().status >= 500
    }
}

/// The problem an upstream failure is reported as (DESIGN.md's table).
pub fn upstream_problem(e: &openstack::Error) -> Problem {
    use openstack::Error as E;
    let kind = match e {
        // Jobs name their cloud entry; one removed from the tenant map (or
        // renamed) since is no longer configured.
        E::UnknownCloud(_) => ProblemKind::TenantNotConfigured,
        E::CredentialsRejected { .. } => ProblemKind::TenantCredentialsInvalid,
        E::NoEndpoint { .. } | E::Unexpected { .. } => ProblemKind::UpstreamUnexpected,
        E::Unavailable { .. } | E::NoAnswer { .. } => ProblemKind::UpstreamUnavailable,
        E::MicroversionUnsupported { .. } => ProblemKind::MicroversionUnsupported,
        E::Cinder { status, .. } => match status {
            401 => ProblemKind::UpstreamAuthFailed,
            403 => ProblemKind::ForbiddenByCloudPolicy,
            404 => ProblemKind::SnapshotNotFound,
            406 => ProblemKind::MicroversionUnsupported,
            413 => ProblemKind::QuotaExceeded,
            400 if e.is_snapshot_not_available() => ProblemKind::SnapshotNotAvailable,
            400 if e.is_malformed_url() => ProblemKind::UpstreamUnexpected,
            400 => ProblemKind::BackupRejected,
            _ => ProblemKind::UpstreamUnexpected,
        },
    };
    let detail = match (kind, e) {
        (_, E::UnknownCloud(cloud)) => format!(
            "the clouds.yaml entry `{cloud}` is no longer in this gateway's tenant map; an operator must configure it again"
        ),
        (ProblemKind::TenantCredentialsInvalid, E::CredentialsRejected { cloud, status, .. }) => {
            format!(
                "Keystone refused the credentials configured for this tenant (clouds.yaml entry `{cloud}`, HTTP {status}); an operator must renew them"
            )
        }
        // Cinder's own words are what the caller can act on.
        (_, E::Cinder { message, .. }) => message.clone(),
        _ => e.to_string(),
    };
    Problem::new(kind, detail).with_upstream(e.upstream_status(), e.upstream_request_id())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cinder(status: u16, message: &str) -> openstack::Error {
        openstack::Error::Cinder {
            status,
            fault: "fault".into(),
            message: message.into(),
            request_id: Some("req-1".into()),
        }
    }

    #[test]
    fn upstream_answers_map_to_the_design_table() {
        let cases = [
            (
                cinder(
                    400,
                    "Invalid snapshot: Snapshot to be backed up must be available, but the current status is \"backing-up\".",
                ),
                409,
                "snapshot-not-available",
            ),
            (
                cinder(400, "Malformed request url"),
                502,
                "upstream-unexpected",
            ),
            (
                cinder(
                    400,
                    "Invalid backup: No backups available to do an incremental backup.",
                ),
                422,
                "backup-rejected",
            ),
            (
                cinder(401, "The request you have made requires authentication."),
                502,
                "upstream-auth-failed",
            ),
            (
                cinder(403, "Policy doesn't allow backup:create to be performed."),
                403,
                "forbidden-by-cloud-policy",
            ),
            (
                cinder(406, "Version 3.43 is not supported by the API."),
                502,
                "microversion-unsupported",
            ),
            (
                cinder(
                    413,
                    "BackupLimitExceeded: Maximum number of backups allowed (1) exceeded",
                ),
                409,
                "quota-exceeded",
            ),
        ];
        for (error, status, slug) in cases {
            let problem = upstream_problem(&error);
            assert_eq!((problem.status, problem.slug()), (status, slug), "{error}");
            assert_eq!(problem.upstream_request_id.as_deref(), Some("req-1"));
        }
        let refused = openstack::Error::CredentialsRejected {
            cloud: "c".into(),
            status: 404,
            request_id: None,
        };
        assert_eq!(
            upstream_problem(&refused).slug(),
            "tenant-credentials-invalid"
        );
    }

    #[test]
    fn an_unreachable_store_is_503_and_says_nothing_was_recorded() {
        let problem = Error::Store(store::Error::Database(sqlx::Error::PoolTimedOut)).problem();
        assert_eq!((problem.status, problem.slug()), (503, "store-unavailable"));
        assert!(problem.detail.contains("nothing was recorded"));
    }
}
