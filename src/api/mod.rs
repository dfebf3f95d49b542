//! The HTTP API: routes by resource, problem+json errors, the request
//! pipeline (request ids, tracing, time and size limits) and the OpenAPI
//! document generated from the handlers' annotations.

mod contract;
mod docs;
pub mod error;
pub mod events;
mod extract;
mod health;
pub mod jobs;
pub mod limits;
mod pagination;
pub mod snapshots;
pub mod webhooks;

use std::{
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};

use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, FromRef},
    http::{HeaderValue, Method, Request, StatusCode},
    middleware,
    routing::get,
};
use tower::ServiceBuilder;
use tower_http::{
    request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer},
    timeout::TimeoutLayer,
    trace::TraceLayer,
};
use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};
use utoipa_axum::router::OpenApiRouter;

use crate::{
    auth::JwtVerifier,
    jobs::{Jobs, Worker},
};
use limits::RateLimiter;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Tag of the job operations.
pub const JOBS_TAG: &str = "jobs";
/// Tag of the snapshot operations (and the backup create).
pub const SNAPSHOTS_TAG: &str = "snapshots";
/// Tag of the probes.
pub const HEALTH_TAG: &str = "health";
/// Tag of the event stream.
pub const EVENTS_TAG: &str = "events";
/// Tag of the webhook operations.
pub const WEBHOOKS_TAG: &str = "webhooks";

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    /// Job and snapshot operations (the business rules).
    pub jobs: Arc<Jobs>,
    /// Verifies callers' bearer tokens.
    pub auth: Arc<JwtVerifier>,
    /// True while the worker runs (readiness).
    pub worker_alive: Arc<AtomicBool>,
    /// The worker, for what readiness reports of it.
    pub worker: Worker,
    /// Per-tenant rate limits.
    pub limiter: Arc<RateLimiter>,
    /// Time between heartbeats on an idle event stream.
    pub event_heartbeat: Duration,
    /// Webhook subscriptions and deliveries.
    pub webhooks: Arc<crate::webhooks::Webhooks>,
}

impl FromRef<AppState> for Arc<RateLimiter> {
    fn from_ref(state: &AppState) -> Self {
        state.limiter.clone()
    }
}

impl FromRef<AppState> for Arc<JwtVerifier> {
    fn from_ref(state: &AppState) -> Self {
        state.auth.clone()
    }
}

/// HTTP limits.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Time limit of a request (longer than the longest `?wait`).
    pub request_timeout: Duration,
    /// Largest body accepted.
    pub max_body_bytes: usize,
    /// Origins whose browser pages may call the API (CORS); none: no CORS.
    pub cors_origins: Vec<String>,
    /// Largest request head read.
    pub max_header_bytes: usize,
}

/// Longest request target (path and query) accepted: ids, filters and a
/// page token fit in far less.
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// Refuses a request target over [`MAX_URI_BYTES`] with a problem+json
/// `414`, and a request head over the limit with a problem+json `431` (the
/// HTTP layer reads up to four times the limit, so that these answers can
/// be given).
async fn head_limit(
    axum::extract::State(max_header_bytes): axum::extract::State<usize>,
    request: Request<axum::body::Body>,
    next: middleware::Next,
) -> axum::response::Response {
    let target = request
        .uri()
        .path_and_query()
        .map_or(0, |target| target.as_str().len());
    if target > MAX_URI_BYTES {
        return axum::response::IntoResponse::into_response(error::ApiError::from(
            crate::problem::Problem::new(
                crate::problem::ProblemKind::UriTooLong,
                format!(
                    "the request's path and query are longer than the {MAX_URI_BYTES} bytes the gateway accepts"
                ),
            ),
        ));
    }
    // The bytes the head took on the wire: `METHOD TARGET HTTP/1.1\r\n`
    // (two spaces, eight for the version, two for the line end), and
    // `name: value\r\n` per header (four).
    let line = request.method().as_str().len() + target + 12;
    let headers: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if line + headers > max_header_bytes {
        return axum::response::IntoResponse::into_response(error::ApiError::from(
            crate::problem::Problem::new(
                crate::problem::ProblemKind::HeadersTooLarge,
                format!(
                    "the request line and headers are larger than the {max_header_bytes} bytes the gateway reads"
                ),
            ),
        ));
    }
    next.run(request).await
}

/// Longest `X-Request-Id` kept from a caller.
const MAX_REQUEST_ID_CHARS: usize = 64;

/// Drops a caller's `X-Request-Id` that is long or holds characters other
/// than letters, digits and `-_.:`: it is echoed in answers and logs, so
/// only a short, safe one is kept (a new one is made otherwise).
async fn sanitize_request_id(
    mut request: Request<axum::body::Body>,
    next: middleware::Next,
) -> axum::response::Response {
    let unsafe_id = request
        .headers()
        .get_all("x-request-id")
        .iter()
        .enumerate()
        .any(|(n, value)| {
            n > 0
                || value.len() > MAX_REQUEST_ID_CHARS
                || value.is_empty()
                || !value
                    .as_bytes()
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b))
        });
    if unsafe_id {
        request.headers_mut().remove("x-request-id");
    }
    next.run(request).await
}

/// Counts every answer, and its latency, by route template (never the raw
/// path: ids would make a series each), method and status.
async fn record_metrics(
    request: Request<axum::body::Body>,
    next: middleware::Next,
) -> axum::response::Response {
    let started = std::time::Instant::now();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    // Methods the API serves; any other a client sends is `other` (each
    // would make series of its own).
    let method = match *request.method() {
        Method::GET | Method::POST | Method::DELETE | Method::OPTIONS | Method::HEAD => {
            request.method().as_str()
        }
        _ => "other",
    }
    .to_owned();
    let response = next.run(request).await;
    let labels = crate::metrics::HttpLabels {
        route,
        method,
        status: response.status().as_u16(),
    };
    let metrics = crate::metrics::metrics();
    metrics.http_requests.get_or_create(&labels).inc();
    metrics
        .http_duration
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    response
}

/// `GET /metrics`: the process's metrics in the Prometheus (`OpenMetrics`)
/// text format; what is read rather than counted is read now.
async fn metrics_text(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let metrics = crate::metrics::metrics();
    match state.jobs.store().count_by_state().await {
        Ok(counts) => {
            for job_state in crate::jobs::model::JobState::ALL {
                let count = counts
                    .iter()
                    .find(|(name, _)| name == job_state.as_str())
                    .map_or(0, |(_, n)| *n);
                metrics
                    .jobs
                    .get_or_create(&crate::metrics::StateLabels {
                        state: job_state.as_str(),
                    })
                    .set(count);
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: could not count the jobs"),
    }
    metrics
        .waiters
        .set(i64::try_from(state.jobs.waiting()).unwrap_or(i64::MAX));
    metrics
        .event_streams
        .set(i64::try_from(state.jobs.event_streams()).unwrap_or(i64::MAX));
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.render(),
    )
        .into_response()
}

/// API answers are not to be sniffed or cached (they carry a tenant's data).
async fn api_headers(
    request: Request<axum::body::Body>,
    next: middleware::Next,
) -> axum::response::Response {
    let mut response = next.run(request).await;
    // The request's span carries its status, so every line of it can be
    // found by outcome.
    tracing::Span::current().record("status", response.status().as_u16());
    let headers = response.headers_mut();
    headers
        .entry(axum::http::header::X_CONTENT_TYPE_OPTIONS)
        .or_insert(HeaderValue::from_static("nosniff"));
    headers
        .entry(axum::http::header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// The CORS layer for the configured origins (none: no layer).
fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok())
        .collect();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([
                axum::http::header::AUTHORIZATION,
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderName::from_static("idempotency-key"),
            ])
            .expose_headers([
                axum::http::header::LOCATION,
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderName::from_static("x-request-id"),
            ])
            .max_age(Duration::from_secs(600)),
    )
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "backup-gateway",
        description = "Create OpenStack Cinder backups from volume snapshots with one call, and follow each one as a job.\n\n\
            Every error is `application/problem+json` (RFC 9457); `type` ends in a stable slug such as `snapshot-not-available`."
    ),
    modifiers(&BearerAuth),
    // The payload of each event of `GET /events` (a stream, whose schema
    // is text).
    components(schemas(events::JobEventView)),
    tags(
        (name = SNAPSHOTS_TAG, description = "The tenant's snapshots, and backing them up"),
        (name = JOBS_TAG, description = "Backup jobs"),
        (name = EVENTS_TAG, description = "The jobs' changes as they happen"),
        (name = WEBHOOKS_TAG, description = "The jobs' changes pushed to the tenant's URLs, signed"),
        (name = HEALTH_TAG, description = "Probes"),
    )
)]
struct ApiDoc;

/// Declares the `bearer` security scheme the operations refer to.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A JWT from the configured key source (a shared secret, PEM public keys, a JWKS or an OIDC issuer) whose tenant claim names the caller's tenant. \
                         Scopes (in the `scope` claim by default): `backups:read` for every GET, `backups:write` for every other operation (create, cancel, and the webhooks' create, rotate and delete); \
                         a valid token without the scope is answered 403 with `WWW-Authenticate: Bearer error=\"insufficient_scope\"`.",
                    ))
                    .build(),
            ),
        );
    }
}

fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(snapshots::router())
        .merge(jobs::router())
        .merge(events::router())
        .merge(webhooks::router())
        .merge(health::router())
}

/// The OpenAPI document, generated from the handlers.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, mut spec) = routes().split_for_parts();
    spec.info.version = env!("CARGO_PKG_VERSION").to_owned();
    contract::ErrorResponses.modify(&mut spec);
    contract::JobLinks.modify(&mut spec);
    contract::WebhookLinks.modify(&mut spec);
    snapshots::document_create(&mut spec);
    events::document_stream(&mut spec);
    webhooks::document_webhooks(&mut spec);
    spec
}

/// The OpenAPI document as committed in `openapi/openapi.json`: pretty JSON
/// with a final newline.
pub fn openapi_json() -> anyhow::Result<String> {
    let mut text = openapi().to_pretty_json()?;
    text.push('\n');
    Ok(text)
}

/// Request ids of the form `req-<uuid>`: the form Cinder accepts as a
/// global request id, so one id follows a request into Cinder's logs.
#[derive(Clone, Copy)]
struct MakeOpenStackRequestId;

impl MakeRequestId for MakeOpenStackRequestId {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        HeaderValue::from_str(&format!("req-{}", uuid::Uuid::new_v4()))
            .ok()
            .map(RequestId::new)
    }
}

/// The whole HTTP application.
pub fn router(state: AppState, http: &HttpSettings) -> Router {
    let (router, _) = routes().split_for_parts();
    let mut spec = openapi();
    jobs::document_max_wait(&mut spec, state.jobs.max_wait().as_secs());
    let spec = Arc::new(spec);
    let trace = TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
        let matched_path = request
            .extensions()
            .get::<axum::extract::MatchedPath>()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default();
        let request_id = request
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        tracing::info_span!("request", method = %request.method(), matched_path, request_id, tenant = tracing::field::Empty, status = tracing::field::Empty)
    });
    router
        .route(
            "/openapi.json",
            get(move || async move { Json(spec.as_ref().clone()) }),
        )
        .route("/metrics", get(metrics_text))
        .merge(docs::router())
        .fallback(|| async { StatusCode::NOT_FOUND })
        .with_state(state)
        .layer(
            ServiceBuilder::new()
                .layer(middleware::from_fn(record_metrics))
                .layer(middleware::from_fn(sanitize_request_id))
                .layer(SetRequestIdLayer::x_request_id(MakeOpenStackRequestId))
                .layer(trace)
                .layer(middleware::from_fn(access_log))
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(middleware::from_fn(api_headers))
                .option_layer(cors(&http.cors_origins))
                .layer(middleware::from_fn_with_state(
                    http.max_body_bytes,
                    error::problem_details,
                ))
                .layer(middleware::from_fn_with_state(
                    http.max_header_bytes,
                    head_limit,
                ))
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::REQUEST_TIMEOUT,
                    http.request_timeout,
                ))
                .layer(DefaultBodyLimit::max(http.max_body_bytes))
                .layer(catch_panic()),
        )
}

/// The access log: one `info` line per answered request, in its span (the
/// request id, route, tenant and status), with the time it took. The
/// probes and `/metrics`, which schedulers and scrapers call every few
/// seconds, are logged at `debug`. An event stream is answered when its
/// headers go out; it runs on after.
async fn access_log(
    request: axum::extract::Request,
    next: middleware::Next,
) -> axum::response::Response {
    let started = std::time::Instant::now();
    let routine = matches!(request.uri().path(), "/healthz" | "/readyz" | "/metrics");
    let mut unanswered = Unanswered(Some((started, tracing::Span::current())));
    let response = next.run(request).await;
    unanswered.0 = None;
    let status = response.status().as_u16();
    let elapsed_ms = millis_since(started);
    if routine {
        tracing::debug!(status, elapsed_ms, "request finished");
    } else {
        tracing::info!(status, elapsed_ms, "request finished");
    }
    response
}

/// A request not answered yet, with its span: logged when it is dropped
/// so (its client went away, a long poll's for one).
struct Unanswered(Option<(std::time::Instant, tracing::Span)>);

impl Drop for Unanswered {
    fn drop(&mut self) {
        if let Some((started, span)) = self.0.take() {
            let _in_request = span.enter();
            tracing::info!(
                elapsed_ms = millis_since(started),
                "request cancelled: the client went away before the answer"
            );
        }
    }
}

/// Milliseconds since `started`, to a tenth.
fn millis_since(started: std::time::Instant) -> f64 {
    (started.elapsed().as_secs_f64() * 10_000.0).round() / 10.0
}

/// Turns a handler's panic into a `500` (which [`error::problem_details`]
/// makes a problem), instead of a closed connection; the panic is logged.
fn catch_panic() -> tower_http::catch_panic::CatchPanicLayer<
    fn(Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response,
> {
    fn answer(panic: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
        let message = panic
            .downcast_ref::<&str>()
            .map(|m| (*m).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        tracing::error!(panic = %message, "a request handler panicked");
        axum::response::IntoResponse::into_response(StatusCode::INTERNAL_SERVER_ERROR)
    }
    tower_http::catch_panic::CatchPanicLayer::custom(answer as fn(_) -> _)
}

#[cfg(test)]
mod tests {
    use axum::{Router, body::Body, http::Request, middleware, routing::get};
    use tower::{ServiceBuilder, ServiceExt};

    #[tokio::test]
    async fn a_panicking_handler_is_answered_500_problem_json() {
        // As in `router`: the problem middleware outside, the catcher inside.
        let app: Router = Router::new()
            .route(
                "/boom",
                get(|| async {
                    if "a bug".len() == 5 {
                        panic!("a bug");
                    }
                }),
            )
            .layer(
                ServiceBuilder::new()
                    .layer(middleware::from_fn_with_state(
                        1024,
                        super::error::problem_details,
                    ))
                    .layer(super::catch_panic()),
            );

        let answer = app
            .oneshot(Request::get("/boom").body(Body::empty()).expect("request"))
            .await
            .expect("answered");

        assert_eq!(answer.status(), 500);
        assert_eq!(answer.headers()["content-type"], super::error::PROBLEM_JSON);
        let body = axum::body::to_bytes(answer.into_body(), 4096)
            .await
            .expect("body");
        let problem: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(problem["type"], "/problems/internal");
    }
}
