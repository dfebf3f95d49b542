//! `/jobs`: a tenant's jobs, one or many, with long polling.

use std::{collections::BTreeMap, time::Duration};

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    AppState, JOBS_TAG,
    error::ApiError,
    extract::{ApiPath, ApiQuery},
    pagination,
};
use crate::{
    auth::Caller,
    jobs::model::{BackupOptions, Job, JobState},
    problem::Problem,
    store::JobFilter,
};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_jobs))
        .routes(routes!(get_job))
        .routes(routes!(cancel_job))
}

/// A job as callers see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobView {
    /// Job id; also in the backup's metadata as `gateway_job_id`.
    #[schema(value_type = String, format = Uuid)]
    pub id: String,
    /// `queued` (recorded, Cinder has not accepted it yet), `running`
    /// (backup `creating`), `succeeded`, `failed` or `cancelled`.
    pub state: JobState,
    /// True once the job is in a terminal state.
    pub done: bool,
    /// Keystone project id of the tenant.
    pub project_id: String,
    /// The snapshot backed up.
    pub snapshot_id: String,
    /// The snapshot's volume.
    pub volume_id: String,
    /// The Cinder backup, once Cinder accepted it.
    #[schema(required = true)]
    pub backup_id: Option<String>,
    /// The fields of the create request.
    pub request: BackupOptions,
    /// Why the job failed; while `queued`, the last transient failure.
    #[schema(required = true)]
    pub error: Option<Problem>,
    /// Submissions to Cinder tried so far.
    pub attempts: u32,
    /// `x-openstack-request-id` of the Cinder call that accepted the backup.
    #[schema(required = true)]
    pub upstream_request_id: Option<String>,
    /// When the job was recorded.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// When Cinder accepted the backup.
    #[schema(required = true)]
    pub started_at: Option<DateTime<Utc>>,
    /// When the job reached a terminal state.
    #[schema(required = true)]
    pub finished_at: Option<DateTime<Utc>>,
    /// When a `queued` job will be submitted again.
    #[schema(required = true)]
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// While `running`: when the backup is expected to complete, estimated
    /// from this tenant's earlier backups of a similar size (`null` without
    /// such history, and once the job ended). The event stream says when it
    /// changes (`job.estimate_changed`).
    #[schema(required = true)]
    pub expected_completion_at: Option<DateTime<Utc>>,
    /// The snapshot's size in GiB, as Cinder gave it (`null` when it did
    /// not).
    #[schema(required = true)]
    pub size_gib: Option<u64>,
    /// Only in the answer to a create that named `callback_url` (and to its
    /// replays with the same `Idempotency-Key`): the secret the callback's
    /// deliveries are signed with (`whsec_...`, see the `webhooks` of this
    /// document). The callback is the webhook `links.callback`; rotate its
    /// secret at `POST /webhooks/{job_id}/rotate-secret`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_secret: Option<String>,
    /// Related resources: `self`, `snapshot`, and `callback` (the webhook
    /// of the create's `callback_url`) when it named one.
    pub links: BTreeMap<String, String>,
}

impl From<Job> for JobView {
    fn from(job: Job) -> Self {
        let mut links = BTreeMap::from([
            ("self".to_owned(), format!("/jobs/{}", job.id)),
            (
                "snapshot".to_owned(),
                format!("/snapshots/{}", job.snapshot_id),
            ),
        ]);
        if job.options.callback_url.is_some() {
            links.insert("callback".to_owned(), format!("/webhooks/{}", job.id));
        }
        JobView {
            id: job.id.to_string(),
            done: job.state.is_done(),
            state: job.state,
            project_id: job.project_id,
            snapshot_id: job.snapshot_id,
            volume_id: job.volume_id,
            backup_id: job.backup_id,
            request: job.options,
            error: job.error,
            attempts: job.attempts,
            upstream_request_id: job.upstream_request_id,
            created_at: job.created_at,
            updated_at: job.updated_at,
            started_at: job.started_at,
            finished_at: job.finished_at,
            next_attempt_at: job.next_attempt_at,
            // Only a running job has one (a replica of an earlier version
            // that ended the job left the column as it was).
            expected_completion_at: job
                .expected_completion_at
                .filter(|_| job.state == JobState::Running),
            size_gib: job.size_gib,
            callback_secret: None,
            links,
        }
    }
}

/// Answers a job, with `Retry-After` while it is not done.
pub(super) fn job_response(
    state: &AppState,
    status: StatusCode,
    job: Job,
    location: bool,
) -> Response {
    view_response(state, status, job, location, None)
}

/// [`job_response`] with the secret of the job's callback.
pub(super) fn view_response(
    state: &AppState,
    status: StatusCode,
    job: Job,
    location: bool,
    callback_secret: Option<String>,
) -> Response {
    let mut headers = HeaderMap::new();
    if !job.state.is_done() {
        let delay = state.jobs.suggested_poll_delay(&job).as_secs().max(1);
        headers.insert(header::RETRY_AFTER, HeaderValue::from(delay));
    }
    if location && let Ok(value) = HeaderValue::from_str(&format!("/jobs/{}", job.id)) {
        headers.insert(header::LOCATION, value);
    }
    let mut view = JobView::from(job);
    view.callback_secret = callback_secret;
    (status, headers, Json(view)).into_response()
}

/// Query of `GET /jobs/{job_id}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct JobGetQuery {
    /// Long poll: wait up to this many seconds for the job to change or
    /// finish before answering; 0 answers at once. At most the server's
    /// `--max-wait` (60 s unless configured otherwise; the `maximum` of the
    /// document a gateway serves at `/openapi.json` is its own).
    #[param(minimum = 0, maximum = 60)]
    pub wait: Option<u32>,
}

/// Writes the configured longest long poll, `max_wait_secs`, as the
/// `maximum` of `wait` in `spec` (the committed document has the default).
pub(super) fn document_max_wait(spec: &mut utoipa::openapi::OpenApi, max_wait_secs: u64) {
    use utoipa::openapi::{RefOr, schema::Schema};
    let Some(get) = super::contract::operation_mut(spec, "/jobs/{job_id}", "get") else {
        return;
    };
    for parameter in get.parameters.iter_mut().flatten() {
        if let RefOr::T(parameter) = parameter
            && parameter.name == "wait"
            && let Some(RefOr::T(Schema::Object(schema))) = parameter.schema.as_mut()
        {
            schema.maximum = Some(utoipa::Number::UInt(
                usize::try_from(max_wait_secs).unwrap_or(usize::MAX),
            ));
        }
    }
}

/// One job.
///
/// A job of another tenant is answered as not found. With `?wait=N` the
/// answer waits until the job changes or is done, at most N seconds.
#[utoipa::path(
    get,
    path = "/jobs/{job_id}",
    tag = JOBS_TAG,
    operation_id = "get_job",
    params(("job_id" = uuid::Uuid, Path, description = "Job id (a UUID; any other text is not a job: 404)"), JobGetQuery),
    responses(
        (status = 200, description = "The job", body = JobView,
            headers(("Retry-After" = u32, description = "While the job is not done: seconds before polling it again"))),
    ),
    security(("bearer" = ["backups:read"]))
)]
pub async fn get_job(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(job_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<JobGetQuery>,
) -> Result<Response, ApiError> {
    let max_wait = state.jobs.max_wait().as_secs();
    if query.wait.is_some_and(|wait| u64::from(wait) > max_wait) {
        return Err(ApiError::BadRequest(format!(
            "`wait` must be between 0 and {max_wait} seconds"
        )));
    }
    let job = match query.wait {
        Some(wait) if wait > 0 => {
            state
                .jobs
                .wait(
                    &caller.tenant,
                    &job_id,
                    Duration::from_secs(u64::from(wait)),
                )
                .await?
        }
        _ => state.jobs.get(&caller.tenant, &job_id).await?,
    };
    Ok(job_response(&state, StatusCode::OK, job, false))
}

/// Cancel a job.
///
/// A job that Cinder cannot have yet (`queued`, and no request for its
/// backup has reached Cinder) becomes `cancelled` and stays readable. Once
/// Cinder may have the backup (`running`, or `queued` after a request whose
/// answer was lost), or the job has ended, the answer is `409` naming the
/// job. Cancelling a cancelled job answers it again.
#[utoipa::path(
    post,
    path = "/jobs/{job_id}/cancel",
    tag = JOBS_TAG,
    operation_id = "cancel_job",
    params(("job_id" = uuid::Uuid, Path, description = "Job id (a UUID; any other text is not a job: 404)")),
    responses(
        (status = 200, description = "The job, now cancelled", body = JobView),
    ),
    security(("bearer" = ["backups:write"]))
)]
pub async fn cancel_job(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(job_id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let job = state.jobs.cancel(&caller.tenant, &job_id).await?;
    Ok(job_response(&state, StatusCode::OK, job, false))
}

/// Query of `GET /jobs`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct JobListQuery {
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Only jobs of this snapshot.
    pub snapshot_id: Option<String>,
    /// Only jobs of this volume.
    pub volume_id: Option<String>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// Opaque: the `next_page_token` of the previous page of this listing,
    /// passed back as it was given (with the same filters). Any other value
    /// is a 400.
    pub page_token: Option<String>,
}

/// A page of jobs.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobListResponse {
    /// Newest first.
    pub jobs: Vec<JobView>,
    /// Opaque token of the next page, to pass as `page_token`; `null` on
    /// the last page.
    #[schema(required = true)]
    pub next_page_token: Option<String>,
}

/// The tenant's jobs, newest first.
#[utoipa::path(
    get,
    path = "/jobs",
    tag = JOBS_TAG,
    operation_id = "list_jobs",
    params(JobListQuery),
    responses(
        (status = 200, description = "A page of jobs", body = JobListResponse),
    ),
    security(("bearer" = ["backups:read"]))
)]
pub async fn list_jobs(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<JobListQuery>,
) -> Result<Json<JobListResponse>, ApiError> {
    let limit = pagination::page_size(query.limit, 20, 100)?;
    let after = pagination::position("jobs", query.page_token.as_deref())?;
    let filter = JobFilter {
        state: query.state,
        snapshot_id: query.snapshot_id,
        volume_id: query.volume_id,
    };
    let page = state
        .jobs
        .list(&caller.tenant, &filter, limit, after)
        .await?;
    Ok(Json(JobListResponse {
        jobs: page.jobs.into_iter().map(JobView::from).collect(),
        next_page_token: page
            .next
            .map(|id| pagination::encode("jobs", &id.to_string())),
    }))
}
