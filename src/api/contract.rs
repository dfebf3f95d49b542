//! What the document says of each operation beyond its success answer: the
//! problems it can answer (every status, each problem type with an
//! example), the headers answers carry, and the links from a created job to
//! the operations on it.
//!
//! The handlers' annotations declare their success answers only; the error
//! answers are written here from one table per operation, so that the table
//! and the error mapping (`jobs::error`, `api::error`) can be read side by
//! side, and a new problem kind is added to the document in one place.

use utoipa::openapi::{
    Content, HeaderBuilder, OpenApi, RefOr, Response, ResponseBuilder,
    example::ExampleBuilder,
    link::LinkBuilder,
    path::Operation,
    schema::{ObjectBuilder, Type},
};

use crate::problem::{Problem, ProblemKind};

use ProblemKind::*;

/// Problems any operation can answer, before it reaches a handler: a target
/// or a head over the limit, the request time limit, a fault of the
/// gateway.
const ANY: &[ProblemKind] = &[UriTooLong, HeadersTooLarge, RequestTimeout, Internal];

/// Problems any operation behind a bearer token can answer: the token, the
/// tenant, the rate limit, and Keystone (asked for the tenant's project),
/// and the identity provider's keys.
const AUTHENTICATED: &[ProblemKind] = &[
    InvalidRequest,
    Unauthenticated,
    TenantNotConfigured,
    InsufficientScope,
    RateLimited,
    TenantCredentialsInvalid,
    UpstreamUnexpected,
    UpstreamUnavailable,
];

/// Problems of an operation that reads the job store.
const STORE: &[ProblemKind] = &[StoreUnavailable];

/// Problems of an operation that calls Cinder.
const CINDER: &[ProblemKind] = &[UpstreamAuthFailed, ForbiddenByCloudPolicy];

/// Problems of an operation whose Cinder calls need a microversion (backup
/// metadata, 3.43): a cloud too old refuses them.
const MICROVERSION: &[ProblemKind] = &[MicroversionUnsupported];

/// The problems the operation `operation_id` can answer, beyond [`ANY`];
/// `None` for an operation the table does not know.
pub(super) fn operation_problems(operation_id: &str) -> Option<Vec<ProblemKind>> {
    let parts: &[&[ProblemKind]] = match operation_id {
        "list_snapshots" => &[AUTHENTICATED, CINDER],
        "get_snapshot" => &[AUTHENTICATED, CINDER, &[SnapshotNotFound]],
        "list_snapshot_backups" => &[
            AUTHENTICATED,
            CINDER,
            MICROVERSION,
            STORE,
            &[SnapshotNotFound],
        ],
        "create_backup" => &[
            AUTHENTICATED,
            CINDER,
            MICROVERSION,
            STORE,
            &[
                SnapshotNotFound,
                SnapshotNotAvailable,
                SnapshotBusy,
                QuotaExceeded,
                IdempotencyKeyInUse,
                IdempotencyKeyReused,
                BackupRejected,
                PayloadTooLarge,
                WebhookTargetNotAllowed,
            ],
        ],
        "list_jobs" => &[AUTHENTICATED, STORE],
        "get_job" => &[AUTHENTICATED, STORE, &[JobNotFound]],
        "cancel_job" => &[AUTHENTICATED, STORE, &[JobNotFound, JobNotCancellable]],
        "stream_events" => &[AUTHENTICATED, STORE, &[TooManyEventStreams, EventsExpired]],
        "create_webhook" => &[
            AUTHENTICATED,
            STORE,
            &[WebhookTargetNotAllowed, TooManyWebhooks, PayloadTooLarge],
        ],
        "list_webhooks" => &[AUTHENTICATED, STORE],
        "get_webhook" | "delete_webhook" | "list_webhook_deliveries" => {
            &[AUTHENTICATED, STORE, &[WebhookNotFound]]
        }
        "rotate_webhook_secret" => &[AUTHENTICATED, STORE, &[WebhookNotFound, PayloadTooLarge]],
        "get_readiness" => &[STORE, &[WorkerStopped]],
        "get_liveness" => &[],
        // A new operation must say what it answers (a test names it).
        _ => return None,
    };
    Some(
        parts
            .iter()
            .flat_map(|kinds| kinds.iter().copied())
            .collect(),
    )
}

/// What makes the operation `operation_id` answer `invalid-request`, for
/// the description of its `400`.
fn invalid_request_causes(operation_id: &str) -> Vec<&'static str> {
    const PAGED: &[&str] = &[
        "`limit` out of its range",
        "a malformed `page_token` (pass back only a token this listing gave out: they are opaque), or one whose position is gone",
    ];
    const SNAPSHOT_PATH: &[&str] = &["a `snapshot_id` of `.` or `..`, or not UTF-8"];
    const QUERY: &[&str] = &["an unknown query parameter, or one of the wrong type"];
    let mut causes = vec!["two `Authorization` headers"];
    let specific: &[&[&str]] = match operation_id {
        "list_snapshots" => &[QUERY, PAGED],
        "get_snapshot" | "list_snapshot_backups" => &[SNAPSHOT_PATH],
        "create_backup" => &[
            SNAPSHOT_PATH,
            &[
                "a body that cannot be read (broken chunked framing), is not JSON (by its `Content-Type` or its text), or is not an object",
                "an unknown field, or a field of the wrong type",
                "`name`, `description`, `container` or `availability_zone` over 255 characters, or an empty `availability_zone`",
                "`metadata` over 50 keys, a key not matching its pattern or over 255 characters, the reserved key `gateway_job_id`, or a value over 255 characters",
                "a malformed `Idempotency-Key`, or two of them",
                "a `callback_url` that is not an `http` or `https` URL, holds a user name or password or a fragment, or is over 2048 characters",
            ],
        ],
        "list_jobs" => &[QUERY, &["a `state` that is not a job state"], PAGED],
        "get_job" => &[
            QUERY,
            &[
                "a `job_id` that is not UTF-8",
                "`wait` over the gateway's `--max-wait`",
            ],
        ],
        "cancel_job" => &[&["a `job_id` that is not UTF-8"]],
        "create_webhook" => &[&[
            "a body that is not a JSON object, an unknown field, or a field of the wrong type",
            "a missing `url`, or one that is not an `http` or `https` URL, holds a user name or password or a fragment, or is over 2048 characters",
            "a `description` over 255 characters",
            "an empty `event_types`, or one naming an unknown type",
            "a `secret` that is not `whsec_` and the base64 of 24 to 64 bytes",
        ]],
        "list_webhooks" => &[QUERY, PAGED],
        "get_webhook" | "delete_webhook" => &[&["a `webhook_id` that is not UTF-8"]],
        "rotate_webhook_secret" => &[&[
            "a body that is not a JSON object, or an unknown field",
            "a `secret` that is not `whsec_` and the base64 of 24 to 64 bytes",
        ]],
        "list_webhook_deliveries" => &[QUERY, &["a `status` that is not a delivery status"], PAGED],
        "stream_events" => &[
            QUERY,
            &[
                "a `job_id` that is not a UUID, or a `snapshot_id` of `.` or `..`",
                "a `Last-Event-ID` that is not a whole number, or past the tenant's latest event",
            ],
        ],
        _ => &[],
    };
    causes.extend(specific.iter().flat_map(|causes| causes.iter().copied()));
    causes
}

/// A detail such as the gateway writes for `kind` when `operation_id`
/// answers it, for the document's examples.
fn example_detail(kind: ProblemKind, operation_id: &str) -> &'static str {
    match kind {
        InvalidRequest => match operation_id {
            "list_jobs" => "`limit` must be between 1 and 100",
            "list_snapshots" => "`limit` must be between 1 and 1000",
            "get_job" => "`wait` must be between 0 and 60 seconds",
            "create_backup" => "the body must be a JSON object (or empty), not an array",
            "get_snapshot" | "list_snapshot_backups" => "`..` is not a snapshot id",
            "stream_events" => "`Last-Event-ID` must be the id of an event (a whole number)",
            "create_webhook" => {
                "`event_types`: `job.started` is not an event type (one of job.created, job.submitted, job.running, job.succeeded, job.failed, job.cancelled, job.retry_scheduled, job.removed, job.estimate_changed)"
            }
            "rotate_webhook_secret" => {
                "`secret` must be `whsec_` followed by the base64 of 24 to 64 bytes"
            }
            _ => "send exactly one `Authorization` header",
        },
        Unauthenticated => "missing bearer token: send `Authorization: Bearer <JWT>`",
        TenantNotConfigured => "tenant `tenant-c` is not configured in this gateway",
        InsufficientScope => "the token lacks the scope `backups:write` this operation needs",
        ForbiddenByCloudPolicy => "Policy doesn't allow backup:create to be performed.",
        SnapshotNotFound => "snapshot 000005a9-0000-4000-8000-a00000000009 not found",
        JobNotFound => "job 0193a0c4-7b3e-7f00-8000-000000000001 not found",
        NotFound => "no such resource; see /openapi.json for the API",
        MethodNotAllowed => {
            "this method is not allowed here; the Allow header lists those that are"
        }
        SnapshotNotAvailable => {
            "snapshot 000005a9-0000-4000-8000-a00000000001 is backing-up; only an available snapshot can be backed up"
        }
        SnapshotBusy => {
            "snapshot 000005a9-0000-4000-8000-a00000000001 already has a backup in progress (job 0193a0c4-7b3e-7f00-8000-000000000001)"
        }
        QuotaExceeded => {
            "Requested backup exceeds allowed Backup gigabytes quota. Requested 10G, quota is 100G and 95G has been consumed."
        }
        BackupRejected => "No backups available to do an incremental backup.",
        TenantCredentialsInvalid => {
            "Keystone refused the credentials configured for this tenant (clouds.yaml entry `tenant-a`, HTTP 401); an operator must renew them"
        }
        UpstreamAuthFailed => "The request you have made requires authentication.",
        MicroversionUnsupported => {
            "the cloud's Cinder offers microversions up to 3.40; `availability_zone` needs 3.51"
        }
        UpstreamUnexpected => "Cinder answered 500 to a snapshot read",
        UpstreamUnavailable => "Cinder did not answer within 30s",
        BackupFailed => "Service not found for creating backup.",
        BackupDeleted => "backup 7c1f0c1e-5a43-4c52-9d55-0f3f7e1fb0a1 was deleted in Cinder",
        BackupStuck => "the backup was still creating after 24h",
        OutcomeUnknown => {
            "a request for this backup may have reached Cinder and the volume's backups could not be listed for 24h"
        }
        TenantProjectChanged => "cloud `tenant-a` now acts for another Keystone project",
        JobNotCancellable => {
            "job 0193a0c4-7b3e-7f00-8000-000000000001 is running: Cinder may already have its backup"
        }
        IdempotencyKeyInUse => {
            "a request with this Idempotency-Key is still being answered; retry once it has been"
        }
        IdempotencyKeyReused => {
            "this Idempotency-Key was first used with another request (path or body); use a new key for a new request"
        }
        RateLimited => {
            "this tenant made more requests than the gateway allows; retry after the time Retry-After gives"
        }
        TooManyEventStreams => {
            "this tenant already has the 16 event streams open that the gateway allows; close one, or retry after the time Retry-After gives"
        }
        WebhookNotFound => "webhook 0193a0c4-7b3e-7f00-8000-0000000000aa not found",
        TooManyWebhooks => {
            "this tenant already has the 20 webhook subscriptions the gateway allows; delete one first"
        }
        WebhookTargetNotAllowed => {
            "`hooks.example.net` is not among the webhook targets this gateway's operator allows"
        }
        EventsExpired => {
            "events after 12 are no longer all kept (those up to 40 were purged): list the jobs (GET /jobs) for their current state, then open the stream without Last-Event-ID"
        }
        PayloadTooLarge => "the request body is larger than the 65536 bytes the gateway accepts",
        HeadersTooLarge => {
            "the request line and headers are larger than the 32768 bytes the gateway reads"
        }
        RequestTimeout => "the request took longer than the gateway allows",
        UriTooLong => {
            "the request's path and query are longer than the 8192 bytes the gateway accepts"
        }
        StoreUnavailable => match operation_id {
            "get_readiness" => "the job store does not answer",
            _ => "the job store is unavailable; nothing was recorded, retry later",
        },
        WorkerStopped => "the worker is not running",
        Internal => "internal error; the operator's logs have the details",
    }
}

/// The example problem of `kind`, as answered.
fn example_problem(kind: ProblemKind, operation_id: &str) -> serde_json::Value {
    let mut problem = Problem::new(kind, example_detail(kind, operation_id));
    problem.instance = Some("req-7c1f0c1e-5a43-4c52-9d55-0f3f7e1fb0a1".to_owned());
    if matches!(kind, SnapshotBusy | JobNotCancellable) {
        problem = problem.with_job("0193a0c4-7b3e-7f00-8000-000000000001");
    }
    if matches!(
        kind,
        QuotaExceeded | BackupRejected | ForbiddenByCloudPolicy
    ) {
        problem = problem.with_upstream(
            Some(match kind {
                QuotaExceeded => 413,
                ForbiddenByCloudPolicy => 403,
                _ => 400,
            }),
            Some("req-5d3cf8d0-3d5e-4b5a-9d1e-2a6c2f0e8d11".to_owned()),
        );
    }
    serde_json::to_value(problem).unwrap_or_default()
}

/// A header of type `type_` described by `description`.
fn header(type_: Type, description: &str) -> utoipa::openapi::Header {
    HeaderBuilder::new()
        .schema(Some(ObjectBuilder::new().schema_type(type_)))
        .description(Some(description))
        .build()
}

/// The headers an answer with `status` carries beyond `X-Request-Id`.
fn problem_headers(status: u16) -> Vec<(&'static str, utoipa::openapi::Header)> {
    let always = |mut header: utoipa::openapi::Header| {
        mark_required(&mut header);
        header
    };
    match status {
        401 => vec![(
            "WWW-Authenticate",
            always(header(
                Type::String,
                "`Bearer` when no token was sent, `Bearer error=\"invalid_token\"` otherwise",
            )),
        )],
        403 => vec![(
            "WWW-Authenticate",
            header(
                Type::String,
                "With `insufficient-scope` only: `Bearer error=\"insufficient_scope\", scope=\"...\"`",
            ),
        )],
        429 | 503 => vec![(
            "Retry-After",
            always(header(Type::Integer, "Seconds to wait before trying again")),
        )],
        _ => Vec::new(),
    }
}

/// The error answer of `status` made of `kinds` (all of that status);
/// `causes` says when the `400` is answered.
fn problem_response(
    status: u16,
    kinds: &[ProblemKind],
    operation_id: &str,
    causes: &[&str],
) -> Response {
    let mut description = kinds
        .iter()
        .map(|kind| {
            let (slug, title, _) = kind.parts();
            format!("- `{slug}`: {title}")
        })
        .collect::<Vec<_>>()
        .join("\n");
    if status == 400 && !causes.is_empty() {
        description.push_str("\n\n`invalid-request` is answered for:\n");
        description.push_str(
            &causes
                .iter()
                .map(|cause| format!("- {cause}"))
                .collect::<Vec<_>>()
                .join("\n"),
        );
    }
    let examples = kinds.iter().map(|&kind| {
        let (slug, title, _) = kind.parts();
        (
            slug,
            ExampleBuilder::new()
                .summary(title)
                .value(Some(example_problem(kind, operation_id)))
                .build(),
        )
    });
    let content = Content::builder()
        .schema(Some(utoipa::openapi::Ref::from_schema_name("Problem")))
        .examples_from_iter(examples)
        .build();
    let mut response = ResponseBuilder::new()
        .description(format!("Problem types:\n{description}"))
        .content(super::error::PROBLEM_JSON, content);
    for (name, header) in problem_headers(status) {
        response = response.header(name, header);
    }
    response.build()
}

/// Writes every operation's error answers from its table, and adds the
/// headers every answer carries.
pub(super) struct ErrorResponses;

impl utoipa::Modify for ErrorResponses {
    fn modify(&self, openapi: &mut OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for operation in [&mut item.get, &mut item.post, &mut item.delete]
                .into_iter()
                .flatten()
            {
                document_errors(operation);
                add_request_id_headers(operation);
                document_snapshot_ids(operation);
            }
        }
    }
}

/// Replaces the error answers of `operation` with those of its table.
fn document_errors(operation: &mut Operation) {
    let id = operation.operation_id.clone().unwrap_or_default();
    let mut kinds = operation_problems(&id).unwrap_or_default();
    kinds.extend_from_slice(ANY);
    let responses = &mut operation.responses.responses;
    responses.retain(|status, _| status.starts_with('2'));
    let mut statuses: Vec<u16> = kinds.iter().map(|kind| kind.status()).collect();
    statuses.sort_unstable();
    statuses.dedup();
    for status in statuses {
        let of_status: Vec<ProblemKind> = kinds
            .iter()
            .copied()
            .filter(|kind| kind.status() == status)
            .collect();
        responses.insert(
            status.to_string(),
            RefOr::T(problem_response(
                status,
                &of_status,
                &id,
                &invalid_request_causes(&id),
            )),
        );
    }
}

/// A `snapshot_id` in a path is not empty and not a dot segment (`.` and
/// `..` would name another resource once in a URL); as a filter, any text.
fn document_snapshot_ids(operation: &mut Operation) {
    use utoipa::openapi::schema::{ObjectBuilder, Schema};
    for parameter in operation.parameters.iter_mut().flatten() {
        if let RefOr::T(parameter) = parameter
            && parameter.name == "snapshot_id"
            && parameter.parameter_in == utoipa::openapi::path::ParameterIn::Path
        {
            let mut schema = ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .build();
            refuse(&mut schema, serde_json::json!({ "enum": [".", ".."] }));
            parameter.schema = Some(RefOr::T(Schema::Object(schema)));
        }
    }
}

/// Adds `not: refused` to `schema`. utoipa has no builder for `not`; an
/// extension entry serializes as a keyword of the schema all the same.
pub(super) fn refuse(schema: &mut utoipa::openapi::Object, refused: serde_json::Value) {
    schema
        .extensions
        .get_or_insert_with(Default::default)
        .insert("not".to_owned(), refused);
}

/// Every answer carries `X-Request-Id`.
fn add_request_id_headers(operation: &mut Operation) {
    for response in operation.responses.responses.values_mut() {
        if let RefOr::T(response) = response {
            let mut request_id = header(
                Type::String,
                "The request's id (the caller's own when it sent a short, safe one): also the problem's `instance`, and Cinder's global request id for the calls made for it",
            );
            mark_required(&mut request_id);
            response
                .headers
                .insert("X-Request-Id".to_owned(), RefOr::T(request_id));
        }
    }
}

/// Marks a response header as always present. utoipa's header has no
/// `required` field; an extension entry serializes as the keyword all the
/// same.
pub(super) fn mark_required(header: &mut utoipa::openapi::Header) {
    header
        .extensions
        .get_or_insert_with(Default::default)
        .insert("required".to_owned(), serde_json::Value::Bool(true));
}

/// The operation `method` (`get` or `post`) on `path` of `spec`, to amend
/// what its annotation says.
pub(super) fn operation_mut<'a>(
    spec: &'a mut OpenApi,
    path: &str,
    method: &str,
) -> Option<&'a mut Operation> {
    let item = spec.paths.paths.get_mut(path)?;
    match method {
        "get" => item.get.as_mut(),
        "post" => item.post.as_mut(),
        "delete" => item.delete.as_mut(),
        _ => None,
    }
}

/// Links from the job a create answers to the operations on it, so that
/// generated clients and stateful testers can follow them.
pub(super) struct JobLinks;

impl utoipa::Modify for JobLinks {
    fn modify(&self, openapi: &mut OpenApi) {
        let Some(create) = operation_mut(openapi, "/snapshots/{snapshot_id}/backups", "post")
        else {
            return;
        };
        let Some(RefOr::T(accepted)) = create.responses.responses.get_mut("202") else {
            return;
        };
        for (name, operation_id, description) in [
            ("GetJob", "get_job", "The job, as it goes on"),
            ("CancelJob", "cancel_job", "Cancel the job"),
        ] {
            accepted.links.insert(
                name.to_owned(),
                RefOr::T(
                    LinkBuilder::new()
                        .operation_id(operation_id)
                        .parameter("job_id", "$response.body#/id")
                        .description(description)
                        .build(),
                ),
            );
        }
    }
}

/// Links from the webhook a subscription answers to the operations on it.
pub(super) struct WebhookLinks;

impl utoipa::Modify for WebhookLinks {
    fn modify(&self, openapi: &mut OpenApi) {
        let Some(create) = operation_mut(openapi, "/webhooks", "post") else {
            return;
        };
        let Some(RefOr::T(created)) = create.responses.responses.get_mut("201") else {
            return;
        };
        for (name, operation_id, description) in [
            ("GetWebhook", "get_webhook", "The webhook"),
            (
                "ListWebhookDeliveries",
                "list_webhook_deliveries",
                "Its deliveries",
            ),
            (
                "RotateWebhookSecret",
                "rotate_webhook_secret",
                "Give it a new secret",
            ),
            ("DeleteWebhook", "delete_webhook", "Unsubscribe"),
        ] {
            created.links.insert(
                name.to_owned(),
                RefOr::T(
                    LinkBuilder::new()
                        .operation_id(operation_id)
                        .parameter("webhook_id", "$response.body#/id")
                        .description(description)
                        .build(),
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_table_knows_every_operation_of_the_document() {
        let spec = super::super::openapi();
        let mut operations = 0;
        for item in spec.paths.paths.values() {
            for operation in [&item.get, &item.post, &item.delete].into_iter().flatten() {
                operations += 1;
                let id = operation.operation_id.clone().unwrap_or_default();
                assert!(
                    super::operation_problems(&id).is_some(),
                    "operation `{id}` is not in the problem table"
                );
            }
        }
        assert_eq!(operations, 16);
        assert!(super::operation_problems("delete_everything").is_none());
    }
}
