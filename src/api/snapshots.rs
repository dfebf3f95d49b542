//! `/snapshots`: the tenant's snapshots as Cinder lists them, and the one
//! call this gateway exists for, `POST /snapshots/{snapshot_id}/backups`.

use std::collections::BTreeMap;

use axum::{Json, extract::State, http::StatusCode, response::Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    AppState, SNAPSHOTS_TAG,
    error::ApiError,
    extract::{ApiJson, ApiPath, ApiQuery, IdempotencyKey, RequestContext},
    jobs::{JobView, view_response},
    pagination,
};
use crate::{
    auth::Caller,
    jobs::{
        JOB_ID_METADATA_KEY,
        model::BackupOptions,
        validation::{MAX_FIELD_CHARS, MAX_METADATA_KEYS, METADATA_KEY_PATTERN},
    },
    openstack::{Backup, Snapshot},
};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_snapshots))
        .routes(routes!(get_snapshot))
        .routes(routes!(create_backup, list_snapshot_backups))
}

/// A volume snapshot, as Cinder shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SnapshotView {
    /// Snapshot id.
    pub id: String,
    /// Name.
    #[schema(required = true)]
    pub name: Option<String>,
    /// Description.
    #[schema(required = true)]
    pub description: Option<String>,
    /// Cinder status. Only `available` snapshots can be backed up; a
    /// snapshot Cinder left `backing-up` after a failed backup needs an
    /// administrator to reset it.
    pub status: String,
    /// The volume the snapshot was taken of.
    pub volume_id: String,
    /// Size in GiB.
    #[schema(required = true)]
    pub size: Option<u64>,
    /// Snapshot metadata.
    pub metadata: BTreeMap<String, String>,
    /// Creation time as Cinder reports it (UTC).
    #[schema(required = true)]
    pub created_at: Option<String>,
    /// Last update as Cinder reports it (UTC).
    #[schema(required = true)]
    pub updated_at: Option<String>,
}

impl From<Snapshot> for SnapshotView {
    fn from(s: Snapshot) -> Self {
        SnapshotView {
            id: s.id,
            name: s.name,
            description: s.description,
            status: s.status,
            volume_id: s.volume_id,
            size: s.size,
            metadata: s.metadata,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

/// Query of `GET /snapshots`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SnapshotListQuery {
    /// Page size, 1 to 1000 (default 50). A cloud whose Cinder pages by
    /// fewer (its `osapi_max_limit`) answers fewer, with a next page.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// Opaque: the `next_page_token` of the previous page of this listing,
    /// passed back as it was given (with the same filters). Any other value
    /// is a 400.
    pub page_token: Option<String>,
}

/// A page of snapshots.
#[derive(Debug, Serialize, ToSchema)]
pub struct SnapshotListResponse {
    /// Newest first, as Cinder orders them.
    pub snapshots: Vec<SnapshotView>,
    /// Opaque token of the next page, to pass as `page_token`; `null` on
    /// the last page.
    #[schema(required = true)]
    pub next_page_token: Option<String>,
}

/// The tenant's snapshots.
#[utoipa::path(
    get,
    path = "/snapshots",
    tag = SNAPSHOTS_TAG,
    operation_id = "list_snapshots",
    params(SnapshotListQuery),
    responses(
        (status = 200, description = "A page of snapshots", body = SnapshotListResponse),
    ),
    security(("bearer" = ["backups:read"]))
)]
pub async fn list_snapshots(
    State(state): State<AppState>,
    caller: Caller,
    RequestContext(ctx): RequestContext,
    ApiQuery(query): ApiQuery<SnapshotListQuery>,
) -> Result<Json<SnapshotListResponse>, ApiError> {
    let limit = pagination::page_size(query.limit, 50, 1000)?;
    let marker = query
        .page_token
        .as_deref()
        .map(|t| pagination::decode("snapshots", t))
        .transpose()?;
    let page = state
        .jobs
        .list_snapshots(&caller.tenant, limit, marker.as_deref(), &ctx)
        .await?;
    Ok(Json(SnapshotListResponse {
        snapshots: page.items.into_iter().map(SnapshotView::from).collect(),
        next_page_token: page
            .next_marker
            .map(|m| pagination::encode("snapshots", &m)),
    }))
}

/// One snapshot.
#[utoipa::path(
    get,
    path = "/snapshots/{snapshot_id}",
    tag = SNAPSHOTS_TAG,
    operation_id = "get_snapshot",
    params(("snapshot_id" = String, Path, description = "Cinder snapshot id")),
    responses(
        (status = 200, description = "The snapshot", body = SnapshotView),
    ),
    security(("bearer" = ["backups:read"]))
)]
pub async fn get_snapshot(
    State(state): State<AppState>,
    caller: Caller,
    RequestContext(ctx): RequestContext,
    ApiPath(snapshot_id): ApiPath<String>,
) -> Result<Json<SnapshotView>, ApiError> {
    let snapshot = state
        .jobs
        .snapshot(&caller.tenant, &snapshot_id, &ctx)
        .await?;
    Ok(Json(snapshot.into()))
}

/// Body of `POST /snapshots/{snapshot_id}/backups`. Every field is
/// optional; an empty body asks for none.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "nightly-2026-11-25", "description": "before the upgrade", "metadata": {"team": "db"}}))]
pub struct CreateBackupRequest {
    /// Backup name (at most 255 characters).
    #[schema(max_length = 255)]
    pub name: Option<String>,
    /// Backup description (at most 255 characters).
    #[schema(max_length = 255)]
    pub description: Option<String>,
    /// Incremental backup: Cinder needs an earlier `available` backup of
    /// the volume, and answers 422 otherwise.
    pub incremental: Option<bool>,
    /// Passed to Cinder as `force`.
    pub force: Option<bool>,
    /// Extra backup metadata: at most 50 keys of 1 to 255 letters, digits
    /// and `-_:. /`, values of at most 255 characters. `gateway_job_id` is
    /// reserved: the gateway puts the job id there.
    #[schema(schema_with = metadata_schema)]
    pub metadata: Option<BTreeMap<String, String>>,
    /// Availability zone of the backup service (Cinder microversion 3.51);
    /// not empty.
    #[schema(min_length = 1, max_length = 255)]
    pub availability_zone: Option<String>,
    /// Object-store container for the backup.
    #[schema(max_length = 255)]
    pub container: Option<String>,
    /// Where to deliver this job's events as webhooks (`http` or `https`,
    /// within the operator's allow-list, `--webhook-allow`; else `400
    /// webhook-target-not-allowed`). The answer's `callback_secret` is the
    /// secret they are signed with (the first goes a second after this
    /// answer), and `links.callback` the webhook, whose deliveries are
    /// readable.
    #[schema(
        min_length = 1,
        max_length = 2048,
        pattern = "^[Hh][Tt][Tt][Pp][Ss]?://[^@#/?]+([/?][^#]*)?$"
    )]
    pub callback_url: Option<String>,
}

/// The schema of a create's `metadata`, with the rules the gateway checks
/// (`jobs::validation`): key pattern and length, the reserved key, value
/// length, number of keys.
fn metadata_schema() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};
    let mut key = ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(MAX_FIELD_CHARS))
        .pattern(Some(METADATA_KEY_PATTERN))
        .build();
    super::contract::refuse(&mut key, json!({ "const": JOB_ID_METADATA_KEY }));
    let value = ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(MAX_FIELD_CHARS))
        .build();
    ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
            Type::Object,
            Type::Null,
        ]))
        .description(Some(format!(
            "Extra backup metadata: at most {MAX_METADATA_KEYS} keys of 1 to {MAX_FIELD_CHARS} letters, digits and `-_:. /`, \
             values of at most {MAX_FIELD_CHARS} characters. `{JOB_ID_METADATA_KEY}` is reserved: the gateway puts the job id there."
        )))
        .property_names(Some(key))
        .additional_properties(Some(AdditionalProperties::RefOr(value.into())))
        .max_properties(Some(MAX_METADATA_KEYS))
        .build()
}

impl From<CreateBackupRequest> for BackupOptions {
    fn from(r: CreateBackupRequest) -> Self {
        BackupOptions {
            name: r.name,
            description: r.description,
            incremental: r.incremental,
            force: r.force,
            metadata: r.metadata.unwrap_or_default(),
            availability_zone: r.availability_zone,
            container: r.container,
            callback_url: r.callback_url,
        }
    }
}

/// Back up a snapshot.
///
/// Reads the snapshot (its volume is taken from it), records a job, and
/// submits the backup to Cinder with the job id in the backup's metadata.
/// Answers `202` with the job and `Location: /jobs/{job_id}`. When Cinder's
/// answer is lost, it is unavailable, or it is slower than the request may
/// wait, the job is answered `queued` and the gateway follows it (a later
/// refusal fails the job, which stays readable); when Cinder refuses while
/// the caller waits, its reason is answered and no job is kept.
///
/// With an `Idempotency-Key`, a retry of the same request (same snapshot
/// and body) is answered the job the first one recorded, and never makes a
/// second backup; the same key with another request is `422`, and while the
/// first request is still being answered, `409`. Keys are per tenant and
/// kept at least 24 hours; a request that recorded nothing frees its key.
#[utoipa::path(
    post,
    path = "/snapshots/{snapshot_id}/backups",
    tag = SNAPSHOTS_TAG,
    operation_id = "create_backup",
    params(
        ("snapshot_id" = String, Path, description = "Cinder snapshot id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries of this request safe: 1 to 255 visible ASCII characters other than `\"` and `\\`, optionally as a quoted string (`\"key\"`)"),
    ),
    request_body(content = CreateBackupRequest, content_type = "application/json"),
    responses(
        (status = 202, description = "Job recorded; follow it at the Location", body = JobView,
            headers(("Location" = String, description = "/jobs/{job_id}"), ("Retry-After" = u32, description = "Seconds before polling the job"))),
    ),
    security(("bearer" = ["backups:write"]))
)]
pub async fn create_backup(
    State(state): State<AppState>,
    caller: Caller,
    RequestContext(ctx): RequestContext,
    ApiPath(snapshot_id): ApiPath<String>,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(body): ApiJson<CreateBackupRequest>,
) -> Result<Response, ApiError> {
    let mut options: crate::jobs::model::BackupOptions = body.into();
    if let Some(url) = &options.callback_url {
        options.callback_url = Some(state.webhooks.check_target("callback_url", url).await?);
    }
    let job = state
        .jobs
        .submit(&caller.tenant, &snapshot_id, options, key.as_deref(), ctx)
        .await?;
    // The callback's deliveries wait for this answer (the caller needs
    // its secret first).
    let secret = match state.jobs.release_callback(&job).await {
        Ok(callback) => callback.map(|c| c.secret),
        Err(e) => {
            // The job stands; its callback's secret can be rotated.
            tracing::warn!(job_id = %job.id, error = %e, "could not read the callback's secret for the answer");
            None
        }
    };
    Ok(view_response(
        &state,
        StatusCode::ACCEPTED,
        job,
        true,
        secret,
    ))
}

/// What the document says of the create beyond its annotation: the body is
/// optional (an empty one means no options), the `Idempotency-Key` header
/// has the form [`crate::jobs::idempotency::parse_key`] accepts, and the
/// `202` always carries `Location`.
pub(super) fn document_create(spec: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{
        RefOr, Required,
        schema::{ObjectBuilder, Type},
    };
    let Some(create) =
        super::contract::operation_mut(spec, "/snapshots/{snapshot_id}/backups", "post")
    else {
        return;
    };
    if let Some(RefOr::T(body)) = create.request_body.as_mut() {
        body.required = Some(Required::False);
        body.description = Some(
            "The backup's options, all optional; an empty body (or none) asks for none".to_owned(),
        );
    }
    for parameter in create.parameters.iter_mut().flatten() {
        if let RefOr::T(parameter) = parameter
            && parameter.name == "Idempotency-Key"
        {
            parameter.schema = Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(IDEMPOTENCY_KEY_PATTERN))
                    .build()
                    .into(),
            );
        }
    }
    if let Some(RefOr::T(accepted)) = create.responses.responses.get_mut("202")
        && let Some(RefOr::T(location)) = accepted.headers.get_mut("Location")
    {
        super::contract::mark_required(location);
    }
}

/// The forms of an `Idempotency-Key`: 1 to 255 visible ASCII characters
/// other than `"` and `\`, bare or in double quotes.
const IDEMPOTENCY_KEY_PATTERN: &str = r#"^([!#-\[\]-~]{1,255}|"[!#-\[\]-~]{1,255}")$"#;

/// A Cinder backup made from the snapshot.
#[derive(Debug, Serialize, ToSchema)]
pub struct BackupView {
    /// Backup id.
    pub id: String,
    /// Name.
    #[schema(required = true)]
    pub name: Option<String>,
    /// Description.
    #[schema(required = true)]
    pub description: Option<String>,
    /// Cinder status (`creating`, `available`, `error`, ...).
    pub status: String,
    /// Cinder's reason, when `error`.
    #[schema(required = true)]
    pub fail_reason: Option<String>,
    /// Size in GiB.
    #[schema(required = true)]
    pub size: Option<u64>,
    /// Incremental or full.
    #[schema(required = true)]
    pub is_incremental: Option<bool>,
    /// Creation time as Cinder reports it (UTC).
    #[schema(required = true)]
    pub created_at: Option<String>,
    /// The gateway job that made it, when one did.
    #[schema(required = true)]
    pub job_id: Option<String>,
    /// Backup metadata.
    pub metadata: BTreeMap<String, String>,
}

impl From<Backup> for BackupView {
    fn from(b: Backup) -> Self {
        BackupView {
            job_id: b.metadata.get(crate::jobs::JOB_ID_METADATA_KEY).cloned(),
            id: b.id,
            name: b.name,
            description: b.description,
            status: b.status,
            fail_reason: b.fail_reason,
            size: b.size,
            is_incremental: b.is_incremental,
            created_at: b.created_at,
            metadata: b.metadata,
        }
    }
}

/// What has been made from one snapshot.
#[derive(Debug, Serialize, ToSchema)]
pub struct SnapshotBackupsResponse {
    /// The snapshot.
    pub snapshot: SnapshotView,
    /// The gateway's jobs of this snapshot, newest first (at most 100).
    pub jobs: Vec<JobView>,
    /// Cinder's backups of this snapshot, by the gateway or anyone else,
    /// newest first, among the volume's 1,000 newest backups.
    pub backups: Vec<BackupView>,
}

/// Jobs and backups of a snapshot.
#[utoipa::path(
    get,
    path = "/snapshots/{snapshot_id}/backups",
    tag = SNAPSHOTS_TAG,
    operation_id = "list_snapshot_backups",
    params(("snapshot_id" = String, Path, description = "Cinder snapshot id")),
    responses(
        (status = 200, description = "The snapshot, its jobs and its backups", body = SnapshotBackupsResponse),
    ),
    security(("bearer" = ["backups:read"]))
)]
pub async fn list_snapshot_backups(
    State(state): State<AppState>,
    caller: Caller,
    RequestContext(ctx): RequestContext,
    ApiPath(snapshot_id): ApiPath<String>,
) -> Result<Json<SnapshotBackupsResponse>, ApiError> {
    let found = state
        .jobs
        .snapshot_backups(&caller.tenant, &snapshot_id, &ctx)
        .await?;
    Ok(Json(SnapshotBackupsResponse {
        snapshot: found.snapshot.into(),
        jobs: found.jobs.into_iter().map(JobView::from).collect(),
        backups: found.backups.into_iter().map(BackupView::from).collect(),
    }))
}
