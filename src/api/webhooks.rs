//! `/webhooks`: a tenant's webhook subscriptions, their secrets and their
//! deliveries. What is delivered is described under `webhooks` in the
//! OpenAPI document (see [`document_webhooks`]).

use std::collections::BTreeMap;

use axum::{
    Json,
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    AppState, WEBHOOKS_TAG,
    error::ApiError,
    events::{JobEventType, JobEventView},
    extract::{ApiJson, ApiPath, ApiQuery},
    pagination,
};
use crate::{
    auth::Caller,
    webhooks::{
        NewSubscription,
        model::{Delivery, DeliveryStatus, Subscription},
    },
};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_webhook, list_webhooks))
        .routes(routes!(get_webhook, delete_webhook))
        .routes(routes!(rotate_webhook_secret))
        .routes(routes!(list_webhook_deliveries))
}

/// A webhook subscription as callers see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    /// Its id.
    #[schema(value_type = String, format = Uuid)]
    pub id: String,
    /// Where deliveries go.
    pub url: String,
    /// The tenant's note.
    pub description: String,
    /// The event types delivered; `null`: every type.
    #[schema(required = true)]
    pub event_types: Option<Vec<JobEventType>>,
    /// Set for the webhook of a create's `callback_url`: its job, whose
    /// events alone it delivers (its id is the job's).
    #[schema(required = true, value_type = Option<String>, format = Uuid)]
    pub job_id: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// While the secret before the last rotation is still signed with:
    /// until when (deliveries then carry two signatures).
    #[schema(required = true)]
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    /// Only in the answers to the create and to a rotation: the secret
    /// deliveries are signed with (`whsec_` and base64). It is never shown
    /// again; a lost one is replaced by a rotation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Related resources: `self`, `deliveries`, and `job` for a callback.
    pub links: BTreeMap<String, String>,
}

impl WebhookView {
    fn new(subscription: Subscription, with_secret: bool) -> Self {
        let id = subscription.id.to_string();
        let mut links = BTreeMap::from([
            ("self".to_owned(), format!("/webhooks/{id}")),
            (
                "deliveries".to_owned(),
                format!("/webhooks/{id}/deliveries"),
            ),
        ]);
        if let Some(job_id) = subscription.job_id {
            links.insert("job".to_owned(), format!("/jobs/{job_id}"));
        }
        let now = crate::jobs::model::now();
        WebhookView {
            id,
            url: subscription.url,
            description: subscription.description,
            event_types: subscription.event_types.map(|types| {
                types
                    .iter()
                    .filter_map(|t| JobEventType::from_name(t))
                    .collect()
            }),
            job_id: subscription.job_id.map(|id| id.to_string()),
            created_at: subscription.created_at,
            previous_secret_expires_at: subscription
                .previous_secret_until
                .filter(|until| *until > now),
            secret: with_secret.then_some(subscription.secret),
            links,
        }
    }
}

/// Body of `POST /webhooks`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookRequest {
    /// Where to deliver: `http` or `https`, no user name or password,
    /// within the operator's allow-list (`--webhook-allow`).
    #[schema(
        min_length = 1,
        max_length = 2048,
        pattern = "^[Hh][Tt][Tt][Pp][Ss]?://[^@#/?]+([/?][^#]*)?$"
    )]
    pub url: String,
    /// A note of the tenant's (at most 255 characters).
    #[schema(max_length = 255)]
    pub description: Option<String>,
    /// Only these event types (at least one); left out, every type.
    #[schema(min_items = 1, value_type = Option<Vec<JobEventType>>)]
    pub event_types: Option<Vec<String>>,
    /// The signing secret to use (`whsec_` and the base64 of 24 to 64
    /// bytes; the pattern states 24 to 62); left out, the gateway makes
    /// one.
    #[schema(pattern = "^whsec_([A-Za-z0-9+/]{4}){8,20}([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$")]
    pub secret: Option<String>,
}

/// Body of `POST /webhooks/{webhook_id}/rotate-secret` (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecretRequest {
    /// The new secret (`whsec_` and the base64 of 24 to 64 bytes); left
    /// out, the gateway makes one.
    #[schema(pattern = "^whsec_([A-Za-z0-9+/]{4}){8,20}([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$")]
    pub secret: Option<String>,
}

/// A page of webhooks.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookListResponse {
    /// Oldest first.
    pub webhooks: Vec<WebhookView>,
    /// Opaque token of the next page, to pass as `page_token`; `null` on
    /// the last page.
    #[schema(required = true)]
    pub next_page_token: Option<String>,
}

/// Query of `GET /webhooks`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct WebhookListQuery {
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// Opaque: the `next_page_token` of the previous page of this listing.
    pub page_token: Option<String>,
}

/// Where a delivery is.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Not delivered yet; `next_attempt_at` says when the next attempt is.
    Pending,
    /// The receiver answered 2xx.
    Succeeded,
    /// Every attempt failed for as long as retries last
    /// (`--webhook-retry-for`).
    Failed,
}

impl From<DeliveryStatus> for DeliveryState {
    fn from(status: DeliveryStatus) -> Self {
        match status {
            DeliveryStatus::Pending => DeliveryState::Pending,
            DeliveryStatus::Succeeded => DeliveryState::Succeeded,
            DeliveryStatus::Failed => DeliveryState::Failed,
        }
    }
}

impl From<DeliveryState> for DeliveryStatus {
    fn from(state: DeliveryState) -> Self {
        match state {
            DeliveryState::Pending => DeliveryStatus::Pending,
            DeliveryState::Succeeded => DeliveryStatus::Succeeded,
            DeliveryState::Failed => DeliveryStatus::Failed,
        }
    }
}

/// One event on its way to a webhook, and how its attempts went.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    /// Its id: the `webhook-id` header of every attempt.
    #[schema(value_type = String, format = Uuid)]
    pub id: String,
    /// The webhook.
    #[schema(value_type = String, format = Uuid)]
    pub webhook_id: String,
    /// The event's number among the tenant's events (the `id` of the same
    /// event on `GET /events`).
    pub event_id: i64,
    /// The event's type.
    pub event_type: JobEventType,
    /// The event's job.
    #[schema(value_type = String, format = Uuid)]
    pub job_id: String,
    /// Where the delivery is.
    pub status: DeliveryState,
    /// Attempts made so far.
    pub attempts: u32,
    /// When it was recorded (just after the event).
    pub created_at: DateTime<Utc>,
    /// While pending: when the next attempt is due.
    #[schema(required = true)]
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When the last attempt was made.
    #[schema(required = true)]
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// The HTTP status the receiver answered the last attempt.
    #[schema(required = true)]
    pub last_status_code: Option<u16>,
    /// Why the last attempt failed.
    #[schema(required = true)]
    pub last_error: Option<String>,
    /// The request body every attempt sends.
    #[schema(value_type = JobEventView)]
    pub payload: serde_json::Value,
}

impl From<Delivery> for DeliveryView {
    fn from(d: Delivery) -> Self {
        DeliveryView {
            id: d.id.to_string(),
            webhook_id: d.subscription_id.to_string(),
            event_id: d.event_seq,
            event_type: JobEventType::from_name(&d.event_type).unwrap_or(JobEventType::Created),
            job_id: d.job_id.to_string(),
            status: d.status.into(),
            attempts: d.attempts,
            created_at: d.created_at,
            next_attempt_at: d.next_attempt_at,
            last_attempt_at: d.last_attempt_at,
            last_status_code: d.last_status_code,
            last_error: d.last_error,
            payload: serde_json::from_str(&d.payload).unwrap_or(serde_json::Value::Null),
        }
    }
}

/// A page of deliveries.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryListResponse {
    /// Newest first.
    pub deliveries: Vec<DeliveryView>,
    /// Opaque token of the next page, to pass as `page_token`; `null` on
    /// the last page.
    #[schema(required = true)]
    pub next_page_token: Option<String>,
}

/// Query of `GET /webhooks/{webhook_id}/deliveries`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeliveryListQuery {
    /// Only deliveries in this state.
    pub status: Option<DeliveryState>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// Opaque: the `next_page_token` of the previous page of this listing
    /// (with the same `status`).
    pub page_token: Option<String>,
}

/// Subscribe to the tenant's job events.
///
/// From now on every event of the tenant's jobs (or of the types named) is
/// sent with a POST to `url`, signed with the returned `secret` as the Standard
/// Webhooks specification says (see `webhooks` in this document), until
/// the webhook is deleted. A URL outside the operator's allow-list is
/// `400 webhook-target-not-allowed`; past `--max-webhooks` subscriptions,
/// `409 too-many-webhooks`.
#[utoipa::path(
    post,
    path = "/webhooks",
    tag = WEBHOOKS_TAG,
    operation_id = "create_webhook",
    request_body(content = CreateWebhookRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "The webhook, with its secret (shown this once)", body = WebhookView,
            headers(("Location" = String, description = "/webhooks/{webhook_id}"))),
    ),
    security(("bearer" = ["backups:write"]))
)]
pub async fn create_webhook(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateWebhookRequest>,
) -> Result<Response, ApiError> {
    let subscription = state
        .webhooks
        .create(
            &caller.tenant,
            NewSubscription {
                url: body.url,
                description: body.description,
                event_types: body.event_types,
                secret: body.secret,
            },
        )
        .await?;
    let location = format!("/webhooks/{}", subscription.id);
    let mut response = (
        StatusCode::CREATED,
        Json(WebhookView::new(subscription, true)),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

/// The tenant's webhooks, oldest first (those of creates' `callback_url`
/// too, with their `job_id`).
#[utoipa::path(
    get,
    path = "/webhooks",
    tag = WEBHOOKS_TAG,
    operation_id = "list_webhooks",
    params(WebhookListQuery),
    responses(
        (status = 200, description = "A page of webhooks", body = WebhookListResponse),
    ),
    security(("bearer" = ["backups:read"]))
)]
pub async fn list_webhooks(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<WebhookListQuery>,
) -> Result<Json<WebhookListResponse>, ApiError> {
    let limit = pagination::page_size(query.limit, 20, 100)?;
    let after = pagination::position("webhooks", query.page_token.as_deref())?;
    let page = state.webhooks.list(&caller.tenant, limit, after).await?;
    Ok(Json(WebhookListResponse {
        webhooks: page
            .items
            .into_iter()
            .map(|s| WebhookView::new(s, false))
            .collect(),
        next_page_token: page
            .next
            .map(|id| pagination::encode("webhooks", &id.to_string())),
    }))
}

/// One webhook (its secret is not shown).
#[utoipa::path(
    get,
    path = "/webhooks/{webhook_id}",
    tag = WEBHOOKS_TAG,
    operation_id = "get_webhook",
    params(("webhook_id" = uuid::Uuid, Path, description = "Webhook id (a UUID; any other text is not a webhook: 404)")),
    responses(
        (status = 200, description = "The webhook", body = WebhookView),
    ),
    security(("bearer" = ["backups:read"]))
)]
pub async fn get_webhook(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(webhook_id): ApiPath<String>,
) -> Result<Json<WebhookView>, ApiError> {
    let subscription = state.webhooks.get(&caller.tenant, &webhook_id).await?;
    Ok(Json(WebhookView::new(subscription, false)))
}

/// Delete a webhook.
///
/// Nothing more is sent to it, not even deliveries still pending, and its
/// deliveries are no longer readable. The webhook of a create's
/// `callback_url` may be deleted too (the job goes on).
#[utoipa::path(
    delete,
    path = "/webhooks/{webhook_id}",
    tag = WEBHOOKS_TAG,
    operation_id = "delete_webhook",
    params(("webhook_id" = uuid::Uuid, Path, description = "Webhook id")),
    responses(
        (status = 204, description = "Deleted"),
    ),
    security(("bearer" = ["backups:write"]))
)]
pub async fn delete_webhook(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(webhook_id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.webhooks.delete(&caller.tenant, &webhook_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Rotate a webhook's secret.
///
/// Deliveries are signed with the new secret from now on, and also with
/// the old one for `--webhook-secret-overlap` (24 hours by default): each
/// then carries two signatures in `webhook-signature`, so a receiver may
/// switch secrets whenever it likes within that time. The body may name the
/// new secret; left out (or an empty body), the gateway makes one. Naming
/// the current secret changes nothing (so a rotation may be retried).
#[utoipa::path(
    post,
    path = "/webhooks/{webhook_id}/rotate-secret",
    tag = WEBHOOKS_TAG,
    operation_id = "rotate_webhook_secret",
    params(("webhook_id" = uuid::Uuid, Path, description = "Webhook id")),
    request_body(content = RotateSecretRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The webhook, with its new secret (shown this once)", body = WebhookView),
    ),
    security(("bearer" = ["backups:write"]))
)]
pub async fn rotate_webhook_secret(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(webhook_id): ApiPath<String>,
    ApiJson(body): ApiJson<RotateSecretRequest>,
) -> Result<Json<WebhookView>, ApiError> {
    let subscription = state
        .webhooks
        .rotate_secret(&caller.tenant, &webhook_id, body.secret)
        .await?;
    Ok(Json(WebhookView::new(subscription, true)))
}

/// A webhook's deliveries, newest first: each event sent to it, where it
/// is, and how its last attempt went. Kept for `--event-retention` once
/// ended.
#[utoipa::path(
    get,
    path = "/webhooks/{webhook_id}/deliveries",
    tag = WEBHOOKS_TAG,
    operation_id = "list_webhook_deliveries",
    params(("webhook_id" = uuid::Uuid, Path, description = "Webhook id"), DeliveryListQuery),
    responses(
        (status = 200, description = "A page of deliveries", body = DeliveryListResponse),
    ),
    security(("bearer" = ["backups:read"]))
)]
pub async fn list_webhook_deliveries(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(webhook_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<DeliveryListQuery>,
) -> Result<Json<DeliveryListResponse>, ApiError> {
    let limit = pagination::page_size(query.limit, 20, 100)?;
    let before = pagination::position("deliveries", query.page_token.as_deref())?;
    let page = state
        .webhooks
        .deliveries(
            &caller.tenant,
            &webhook_id,
            query.status.map(Into::into),
            limit,
            before,
        )
        .await?;
    Ok(Json(DeliveryListResponse {
        deliveries: page.items.into_iter().map(DeliveryView::from).collect(),
        next_page_token: page
            .next
            .map(|id| pagination::encode("deliveries", &id.to_string())),
    }))
}

/// What the annotations cannot say of the webhook operations (a rotation's
/// body is optional; a subscription's `201` always has `Location`), and the
/// `webhooks` section of the document (OpenAPI 3.1): the request the
/// gateway makes to a subscriber for each event, with its signature
/// headers.
pub(super) fn document_webhooks(spec: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{
        Content, HttpMethod, PathItem, PathsBuilder, Ref, Required, ResponseBuilder,
        ResponsesBuilder,
        path::{OperationBuilder, ParameterBuilder, ParameterIn},
        request_body::RequestBodyBuilder,
        schema::{ObjectBuilder, Type},
    };
    let header = |name: &str, description: &str, schema: ObjectBuilder| {
        ParameterBuilder::new()
            .name(name)
            .parameter_in(ParameterIn::Header)
            .required(Required::True)
            .description(Some(description))
            .schema(Some(schema.build()))
            .build()
    };
    let string = || ObjectBuilder::new().schema_type(Type::String);
    let operation = OperationBuilder::new()
        .tag(WEBHOOKS_TAG)
        .operation_id(Some("job_event"))
        .summary(Some("A job event, delivered to a webhook"))
        .description(Some(
            "For each event of the tenant's jobs that a webhook takes (see `POST /webhooks`, and a create's `callback_url`), \
             the gateway POSTs the event to the webhook's URL: the same JSON as the `data` of the event on `GET /events`. \
             Signed as the Standard Webhooks specification says: `webhook-signature` holds `v1,` and the base64 of \
             HMAC-SHA256 over `{webhook-id}.{webhook-timestamp}.{body}`, keyed with the bytes of the secret (the base64 after `whsec_`); \
             while a rotated-out secret is still valid there are two signatures, space-separated, and either verifies. \
             Receivers should refuse a `webhook-timestamp` far from their clock (5 minutes is usual).\n\n\
             Any 2xx answer is success. Anything else (a redirect too: none is followed), or no answer within the gateway's \
             `--webhook-timeout`, is retried after a pause that doubles from `--webhook-retry-base` up to `--webhook-retry-max`, \
             for `--webhook-retry-for` (24 hours by default); then the delivery is `failed`. Deliveries are at least once: \
             the same `webhook-id` may come again, and receivers should treat a repeat as done. \
             One webhook's deliveries are sent in the order of their events, except that a delivery being retried does not hold up the ones after it.",
        ))
        .parameter(header(
            "webhook-id",
            "The delivery's id: the same on every attempt of it (see `GET /webhooks/{webhook_id}/deliveries`)",
            string().format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::Uuid,
            ))),
        ))
        .parameter(header(
            "webhook-timestamp",
            "When this attempt was signed, in seconds since 1970-01-01T00:00:00Z",
            string().pattern(Some("^[0-9]+$")),
        ))
        .parameter(header(
            "webhook-signature",
            "`v1,<base64 HMAC-SHA256>`, once per valid secret, space-separated",
            string().pattern(Some("^v1,[A-Za-z0-9+/=]+( v1,[A-Za-z0-9+/=]+)?$")),
        ))
        .request_body(Some(
            RequestBodyBuilder::new()
                .required(Some(Required::True))
                .content(
                    "application/json",
                    Content::new(Some(Ref::from_schema_name("JobEventView"))),
                )
                .build(),
        ))
        .responses(
            ResponsesBuilder::new()
                .response(
                    "2XX",
                    ResponseBuilder::new()
                        .description("Received: the delivery has succeeded")
                        .build(),
                )
                .response(
                    "default",
                    ResponseBuilder::new()
                        .description("Not received: the delivery is attempted again later")
                        .build(),
                )
                .build(),
        )
        .build();
    if let Some(rotate) =
        super::contract::operation_mut(spec, "/webhooks/{webhook_id}/rotate-secret", "post")
        && let Some(utoipa::openapi::RefOr::T(body)) = rotate.request_body.as_mut()
    {
        body.required = Some(Required::False);
        body.description = Some(
            "The new secret, optional; an empty body (or none) asks the gateway for one".to_owned(),
        );
    }
    if let Some(create) = super::contract::operation_mut(spec, "/webhooks", "post")
        && let Some(utoipa::openapi::RefOr::T(created)) = create.responses.responses.get_mut("201")
        && let Some(utoipa::openapi::RefOr::T(location)) = created.headers.get_mut("Location")
    {
        super::contract::mark_required(location);
    }
    spec.webhooks = Some(
        PathsBuilder::new()
            .path("job-event", PathItem::new(HttpMethod::Post, operation))
            .build(),
    );
}
