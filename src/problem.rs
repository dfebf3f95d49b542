//! RFC 9457 problem details: the one shape every error of the gateway takes,
//! in HTTP answers and inside a job's `error` field.
//!
//! This module owns the catalogue of problem types (their slug, title and
//! HTTP status). It knows nothing of axum: `api::error` renders a [`Problem`]
//! as `application/problem+json`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Prefix of every problem `type` URI. Relative, so it resolves against the
/// gateway's own address; the README's error table documents each one.
pub const TYPE_PREFIX: &str = "/problems/";

/// The kinds of problem the gateway reports. Each has a stable slug (the last
/// segment of the `type` URI), a title and a default HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// Malformed body, bad field, unknown field, bad query or path.
    InvalidRequest,
    /// Missing or invalid bearer token.
    Unauthenticated,
    /// The token's tenant has no OpenStack credentials configured.
    TenantNotConfigured,
    /// A valid token without the scope the operation needs.
    InsufficientScope,
    /// Cinder refused by policy (for example a reader-only credential).
    ForbiddenByCloudPolicy,
    /// No such snapshot in the caller's tenant.
    SnapshotNotFound,
    /// No such job in the caller's tenant.
    JobNotFound,
    /// No such route.
    NotFound,
    /// Method not allowed on this route.
    MethodNotAllowed,
    /// The snapshot is not `available` (for example `backing-up`).
    SnapshotNotAvailable,
    /// Another job of this snapshot is still queued or running.
    SnapshotBusy,
    /// Cinder's backup quota is exhausted.
    QuotaExceeded,
    /// Cinder refused the create for another reason (its message is kept).
    BackupRejected,
    /// The tenant's own Keystone credentials were refused.
    TenantCredentialsInvalid,
    /// Cinder refused the gateway's token even after a fresh one.
    UpstreamAuthFailed,
    /// The cloud does not offer the Cinder microversion a feature needs.
    MicroversionUnsupported,
    /// Keystone or Cinder answered something the gateway did not expect.
    UpstreamUnexpected,
    /// Keystone or Cinder could not be reached (or answered 5xx).
    UpstreamUnavailable,
    /// The backup failed in Cinder (`error` status, with Cinder's reason).
    BackupFailed,
    /// The backup was deleted in Cinder while the job ran.
    BackupDeleted,
    /// The backup stayed `creating` past the configured limit.
    BackupStuck,
    /// A POST of the job may have reached Cinder, and its backups could not
    /// be listed to find out for the configured limit.
    OutcomeUnknown,
    /// The cloud entry of the tenant now acts for another Keystone project.
    TenantProjectChanged,
    /// The job cannot be cancelled: Cinder may have its backup, or it ended.
    JobNotCancellable,
    /// Another request with this `Idempotency-Key` is still being answered.
    IdempotencyKeyInUse,
    /// The `Idempotency-Key` was first used with another request.
    IdempotencyKeyReused,
    /// The tenant made more requests than its rate limit allows.
    RateLimited,
    /// The tenant has as many event streams open as the gateway allows.
    TooManyEventStreams,
    /// Events after the one a stream was to resume from are no longer kept.
    EventsExpired,
    /// No such webhook subscription in the caller's tenant.
    WebhookNotFound,
    /// The tenant has as many webhook subscriptions as the gateway allows.
    TooManyWebhooks,
    /// A webhook or callback URL outside the operator's allow-list.
    WebhookTargetNotAllowed,
    /// The request body is larger than the limit.
    PayloadTooLarge,
    /// The request line and headers are larger than the limit.
    HeadersTooLarge,
    /// The request target (path and query) is longer than the limit.
    UriTooLong,
    /// The request took longer than the gateway allows.
    RequestTimeout,
    /// The job store could not be reached.
    StoreUnavailable,
    /// The worker that follows jobs has stopped (readiness).
    WorkerStopped,
    /// A bug or an unexpected internal condition.
    Internal,
}

impl ProblemKind {
    /// Slug, title and HTTP status of this kind.
    pub fn parts(self) -> (&'static str, &'static str, u16) {
        use ProblemKind::*;
        match self {
            InvalidRequest => ("invalid-request", "The request is not valid", 400),
            Unauthenticated => ("unauthenticated", "Authentication required", 401),
            TenantNotConfigured => ("tenant-not-configured", "Tenant not configured", 403),
            InsufficientScope => ("insufficient-scope", "The token lacks a scope", 403),
            ForbiddenByCloudPolicy => (
                "forbidden-by-cloud-policy",
                "Forbidden by the cloud's policy",
                403,
            ),
            SnapshotNotFound => ("snapshot-not-found", "Snapshot not found", 404),
            JobNotFound => ("job-not-found", "Job not found", 404),
            NotFound => ("not-found", "Not found", 404),
            MethodNotAllowed => ("method-not-allowed", "Method not allowed", 405),
            SnapshotNotAvailable => ("snapshot-not-available", "Snapshot not available", 409),
            SnapshotBusy => (
                "snapshot-busy",
                "A backup of this snapshot is already in progress",
                409,
            ),
            QuotaExceeded => ("quota-exceeded", "Backup quota exceeded", 409),
            BackupRejected => ("backup-rejected", "Cinder rejected the backup", 422),
            TenantCredentialsInvalid => (
                "tenant-credentials-invalid",
                "The tenant's OpenStack credentials were refused",
                502,
            ),
            UpstreamAuthFailed => (
                "upstream-auth-failed",
                "Cinder refused the gateway's token",
                502,
            ),
            MicroversionUnsupported => (
                "microversion-unsupported",
                "The cloud's Cinder is too old",
                502,
            ),
            UpstreamUnexpected => (
                "upstream-unexpected",
                "OpenStack answered unexpectedly",
                502,
            ),
            UpstreamUnavailable => ("upstream-unavailable", "OpenStack is unavailable", 503),
            BackupFailed => ("backup-failed", "The backup failed in Cinder", 502),
            BackupDeleted => (
                "backup-deleted",
                "The backup was deleted outside the gateway",
                502,
            ),
            BackupStuck => ("backup-stuck", "The backup is stuck in Cinder", 504),
            OutcomeUnknown => (
                "backup-outcome-unknown",
                "Whether Cinder made the backup is unknown",
                502,
            ),
            TenantProjectChanged => (
                "tenant-project-changed",
                "The tenant's credentials now act for another project",
                502,
            ),
            JobNotCancellable => ("job-not-cancellable", "The job cannot be cancelled", 409),
            IdempotencyKeyInUse => (
                "idempotency-key-in-use",
                "A request with this Idempotency-Key is still being answered",
                409,
            ),
            IdempotencyKeyReused => (
                "idempotency-key-reused",
                "The Idempotency-Key was used for another request",
                422,
            ),
            WebhookNotFound => ("webhook-not-found", "Webhook not found", 404),
            TooManyWebhooks => ("too-many-webhooks", "Too many webhook subscriptions", 409),
            WebhookTargetNotAllowed => (
                "webhook-target-not-allowed",
                "The URL is not an allowed webhook target",
                400,
            ),
            PayloadTooLarge => ("payload-too-large", "The request body is too large", 413),
            RateLimited => ("rate-limited", "Too many requests", 429),
            TooManyEventStreams => ("too-many-event-streams", "Too many event streams", 429),
            EventsExpired => (
                "events-expired",
                "The events to resume from are no longer kept",
                410,
            ),
            HeadersTooLarge => (
                "request-header-fields-too-large",
                "The request headers are too large",
                431,
            ),
            UriTooLong => ("uri-too-long", "The request URI is too long", 414),
            RequestTimeout => ("request-timeout", "The request took too long", 408),
            StoreUnavailable => ("store-unavailable", "The job store is unavailable", 503),
            WorkerStopped => ("worker-stopped", "The worker has stopped", 503),
            Internal => ("internal", "Internal error", 500),
        }
    }

    /// The HTTP status of this kind.
    pub fn status(self) -> u16 {
        self.parts().2
    }
}

/// An RFC 9457 problem object (`application/problem+json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "type": "/problems/snapshot-not-available",
    "title": "Snapshot not available",
    "status": 409,
    "detail": "snapshot 389e9158-c018-4e85-ad3c-cac25295c450 is backing-up; only an available snapshot can be backed up",
    "instance": "req-7c1f0c1e-5a43-4c52-9d55-0f3f7e1fb0a1"
}))]
pub struct Problem {
    /// URI reference naming the problem type; the last segment is a stable slug.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// Short human-readable summary of the problem type.
    pub title: String,
    /// HTTP status of this problem.
    pub status: u16,
    /// What happened, in words a caller can act on.
    pub detail: String,
    /// The request id of the call that produced this problem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// HTTP status that Cinder or Keystone answered, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_status: Option<u16>,
    /// `X-Openstack-Request-Id` of the upstream answer, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_request_id: Option<String>,
    /// Id of the job this problem is about (for example the job holding a busy snapshot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
}

impl Problem {
    /// A problem of `kind` with a detail message.
    pub fn new(kind: ProblemKind, detail: impl Into<String>) -> Self {
        let (slug, title, status) = kind.parts();
        Problem {
            type_uri: format!("{TYPE_PREFIX}{slug}"),
            title: title.to_owned(),
            status,
            detail: detail.into(),
            instance: None,
            upstream_status: None,
            upstream_request_id: None,
            job_id: None,
        }
    }

    /// Records what the upstream service answered.
    pub fn with_upstream(mut self, status: Option<u16>, request_id: Option<String>) -> Self {
        self.upstream_status = status;
        self.upstream_request_id = request_id;
        self
    }

    /// Names the job this problem is about.
    pub fn with_job(mut self, job_id: impl ToString) -> Self {
        self.job_id = Some(job_id.to_string());
        self
    }

    /// The slug of this problem's type (`quota-exceeded`, ...).
    pub fn slug(&self) -> &str {
        self.type_uri
            .strip_prefix(TYPE_PREFIX)
            .unwrap_or(&self.type_uri)
    }
}

impl Problem {
    /// Overrides the HTTP status (for a kind used with another status).
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }
}

/// Longest caller-supplied text echoed in a problem or a log line.
const MAX_ECHO_CHARS: usize = 64;

/// A caller-supplied value as it may be echoed back (in a problem's
/// detail, in a log): at most 64 characters, control characters replaced.
pub fn echo(value: &str) -> String {
    let mut out: String = value
        .chars()
        .take(MAX_ECHO_CHARS)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if value.chars().count() > MAX_ECHO_CHARS {
        out.push('…');
    }
    out
}
