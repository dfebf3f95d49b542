//! The API's error type and its problem+json rendering.
//!
//! Which error type where: lower layers return their own typed errors
//! (`openstack::Error`, `store::Error`, `jobs::Error`); handlers return
//! [`ApiError`], which `?` builds from them. An `ApiError` becomes a
//! response carrying its [`Problem`] in the extensions; the
//! [`problem_details`] middleware adds the request id as `instance`, writes
//! the body and logs the error once, inside the request's span. Internal
//! errors are answered with a generic detail only: database and upstream
//! texts go to the log, not to the caller.

use axum::{
    body::Body,
    extract::Request,
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::{
    auth::AuthError,
    jobs,
    problem::{Problem, ProblemKind},
};

/// Longest problem detail answered.
const MAX_DETAIL_CHARS: usize = 400;

/// The media type of every error answer (RFC 9457).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No valid bearer token.
    #[error(transparent)]
    Unauthenticated(#[from] AuthError),
    /// The request itself is malformed (body, query, path).
    #[error("{0}")]
    BadRequest(String),
    /// A problem decided by a lower layer or a rejection, as is (boxed:
    /// a problem is large and errors travel in every handler's `Result`).
    #[error("{}", .0.detail)]
    Problem(Box<Problem>),
    /// A job operation failed.
    #[error(transparent)]
    Jobs(#[from] jobs::Error),
    /// The body is over the limit (the problem, which names the limit, is
    /// written by [`problem_details`]).
    #[error("the request body is too large")]
    PayloadTooLarge,
    /// The tenant made more requests than its rate allows; retry after
    /// this long.
    #[error("rate limited")]
    RateLimited(std::time::Duration),
}

impl ApiError {
    fn problem(&self) -> Problem {
        match self {
            ApiError::Unauthenticated(AuthError::InsufficientScope(scope)) => Problem::new(
                ProblemKind::InsufficientScope,
                format!("the token lacks the scope `{scope}` this operation needs"),
            ),
            ApiError::Unauthenticated(AuthError::KeysUnavailable) => Problem::new(
                ProblemKind::UpstreamUnavailable,
                AuthError::KeysUnavailable.to_string(),
            ),
            ApiError::Unauthenticated(e) => {
                Problem::new(ProblemKind::Unauthenticated, e.to_string())
            }
            ApiError::BadRequest(message) => {
                Problem::new(ProblemKind::InvalidRequest, message.clone())
            }
            ApiError::Problem(problem) => problem.as_ref().clone(),
            ApiError::Jobs(e) => e.problem(),
            ApiError::PayloadTooLarge => Problem::new(
                ProblemKind::PayloadTooLarge,
                "the request body is larger than the gateway accepts",
            ),
            ApiError::RateLimited(_) => Problem::new(
                ProblemKind::RateLimited,
                "this tenant made more requests than the gateway allows; retry after the time Retry-After gives",
            ),
        }
    }
}

impl From<Problem> for ApiError {
    fn from(problem: Problem) -> Self {
        ApiError::Problem(Box::new(problem))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Jobs(e) = &self
            && e.is_server_side()
        {
            // The full error (with its sources) goes to the log only.
            tracing::error!(error = %e, "request failed");
        }
        if let ApiError::PayloadTooLarge = self {
            // The middleware knows the limit and names it.
            return StatusCode::PAYLOAD_TOO_LARGE.into_response();
        }
        let logged = matches!(&self, ApiError::Jobs(e) if e.is_server_side());
        let problem = self.problem();
        let status =
            StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = status.into_response();
        if let ApiError::RateLimited(wait) = &self {
            let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let ApiError::Unauthenticated(AuthError::InsufficientScope(scope)) = &self
            && let Ok(value) = HeaderValue::from_str(&format!(
                "Bearer error=\"insufficient_scope\", scope=\"{scope}\""
            ))
        {
            // RFC 6750 3.1: a valid token without the scope names the scope.
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        response.extensions_mut().insert(problem);
        if logged {
            response.extensions_mut().insert(AlreadyLogged);
        }
        response
    }
}

/// Marks an answer whose error was logged where it happened, with more
/// detail than the problem carries: the middleware does not log it again.
#[derive(Debug, Clone, Copy)]
struct AlreadyLogged;

/// The problem for an error answer that did not come from an [`ApiError`]:
/// axum's rejections and tower-http's 408 and 413 are plain text or empty.
fn problem_for_status(status: StatusCode, max_body_bytes: usize) -> Problem {
    let kind = match status.as_u16() {
        400 => ProblemKind::InvalidRequest,
        401 => ProblemKind::Unauthenticated,
        404 => ProblemKind::NotFound,
        405 => ProblemKind::MethodNotAllowed,
        408 => ProblemKind::RequestTimeout,
        413 => ProblemKind::PayloadTooLarge,
        503 => ProblemKind::UpstreamUnavailable,
        _ => ProblemKind::Internal,
    };
    let detail = match kind {
        ProblemKind::NotFound => "no such resource; see /openapi.json for the API".to_owned(),
        ProblemKind::MethodNotAllowed => {
            "this method is not allowed here; the Allow header lists those that are".to_owned()
        }
        ProblemKind::RequestTimeout => "the request took longer than the gateway allows".to_owned(),
        ProblemKind::PayloadTooLarge => {
            format!(
                "the request body is larger than the {max_body_bytes} bytes the gateway accepts"
            )
        }
        ProblemKind::Internal if status == StatusCode::INTERNAL_SERVER_ERROR => {
            "internal error; the operator's logs have the details".to_owned()
        }
        _ => status.canonical_reason().unwrap_or("error").to_owned(),
    };
    let mut problem = Problem::new(kind, detail);
    problem.status = status.as_u16();
    problem
}

/// Middleware: makes every error answer `application/problem+json`, with
/// the request id as `instance`, and logs it once. Its state is the body
/// limit, which a `413` names.
pub async fn problem_details(
    axum::extract::State(max_body_bytes): axum::extract::State<usize>,
    request: Request,
    next: Next,
) -> Response {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    // Before the line below, which then carries it.
    tracing::Span::current().record("status", status.as_u16());
    let mut problem = match response.extensions_mut().remove::<Problem>() {
        Some(problem) => problem,
        None => problem_for_status(status, max_body_bytes),
    };
    problem.instance = request_id;
    // A detail may quote what the caller sent (a field name, a value, a
    // header): never more than a short excerpt of it.
    if problem.detail.chars().count() > MAX_DETAIL_CHARS {
        problem.detail = problem
            .detail
            .chars()
            .take(MAX_DETAIL_CHARS)
            .collect::<String>()
            + "…";
    }
    if response.extensions().get::<AlreadyLogged>().is_some() {
        // Logged once already, with its sources.
    } else if status.is_server_error() {
        tracing::warn!(status = status.as_u16(), problem = problem.slug(), detail = %problem.detail, "request failed");
    } else {
        tracing::info!(
            status = status.as_u16(),
            problem = problem.slug(),
            "request refused"
        );
    }
    let (mut parts, _) = response.into_parts();
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    parts.headers.remove(header::CONTENT_LENGTH);
    if status == StatusCode::UNAUTHORIZED && !parts.headers.contains_key(header::WWW_AUTHENTICATE) {
        // RFC 6750: a 401 names the scheme the client should use.
        let value = if problem.detail.starts_with("missing") {
            "Bearer"
        } else {
            "Bearer error=\"invalid_token\""
        };
        parts
            .headers
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(value));
    }
    // Every 503 and 429 says when to come back (the rate limit says its own).
    if matches!(
        status,
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
    ) && !parts.headers.contains_key(header::RETRY_AFTER)
    {
        parts
            .headers
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    }
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    Response::from_parts(parts, Body::from(body))
}
