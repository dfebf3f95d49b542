//! The Keystone v3 listener: token issue, validation and revocation, and
//! the version documents. Every answer carries `Vary: X-Auth-Token` and an
//! `x-openstack-request-id` (exchanges 01-05); errors use Keystone's
//! `{"error": {...}}` shape, 401s with `WWW-Authenticate`.

mod auth;
mod token;

use std::future::Future;
use std::pin::Pin;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::errors::KeystoneError;
use crate::faults::Act;
use crate::server;
use crate::{Op, Sim, ids};

/// Largest request body read (auth bodies are tiny).
const BODY_LIMIT: usize = 1024 * 1024;

/// The Keystone router.
pub(crate) fn router(sim: Sim) -> Router {
    Router::new()
        .route("/", get(versions))
        .route("/v3", get(version))
        .route("/v3/", get(version))
        .route(
            "/v3/auth/tokens",
            get(endpoint(Op::TokenValidate, validate_token))
                .post(endpoint(Op::TokenIssue, issue_token))
                .delete(endpoint(Op::TokenValidate, revoke_token)),
        )
        .fallback(not_found)
        .with_state(sim)
}

/// What a Keystone operation answers when it succeeds.
struct Reply {
    status: StatusCode,
    body: Option<Value>,
    subject_token: Option<String>,
}

/// One request as the operations see it.
struct Call<'a> {
    sim: &'a Sim,
    headers: &'a HeaderMap,
    query: &'a [(String, String)],
    body: &'a Bytes,
}

type Work = fn(&Call<'_>) -> Result<Reply, KeystoneError>;
type BoxResponse = Pin<Box<dyn Future<Output = Response> + Send>>;

fn endpoint(
    op: Op,
    work: Work,
) -> impl Fn(State<Sim>, Request) -> BoxResponse + Clone + Send + Sync + 'static {
    move |State(sim): State<Sim>, request: Request| Box::pin(run(sim, op, work, request))
}

/// Counts the call, answers it, and counts its answer's status (none if
/// its connection was cut or the client left while it was delayed).
async fn run(sim: Sim, op: Op, work: Work, request: Request) -> Response {
    server::counted(&sim, op, request, |request| {
        respond(&sim, op, work, request)
    })
    .await
}

/// Fires a queued fault or chaos, runs the operation, adds headers. `true`
/// with the answer: the connection is to be cut instead.
async fn respond(sim: &Sim, op: Op, work: Work, request: Request) -> (Response, bool) {
    let (parts, body) = request.into_parts();
    let request_id = ids::request_id();
    let keystone_url = keystone_url(sim);

    // Keystone's paths name no project: project-bound faults never fire here.
    let misbehaviour = sim.misbehaviour(op, None);
    if let Some(delay) = misbehaviour.delay {
        tokio::time::sleep(delay).await;
    }
    let mut drop_after = false;
    match misbehaviour.act {
        Some(Act::Status(code)) => {
            let response =
                error_response(&KeystoneError::for_status(code), &request_id, &keystone_url);
            return (response, false);
        }
        Some(Act::BareStatus(code)) => return (server::bare_answer(code), false),
        Some(Act::DropBeforeWork) => {
            return (StatusCode::INTERNAL_SERVER_ERROR.into_response(), true);
        }
        Some(Act::DropAfterWork) => drop_after = true,
        None => {}
    }

    let body = axum::body::to_bytes(body, BODY_LIMIT)
        .await
        .unwrap_or_default();
    let query = crate::query::parse(parts.uri.query());
    let call = Call {
        sim,
        headers: &parts.headers,
        query: &query,
        body: &body,
    };
    let response = match work(&call) {
        Ok(reply) => reply_response(reply, &request_id),
        Err(error) => error_response(&error, &request_id, &keystone_url),
    };
    (response, drop_after)
}

fn keystone_url(sim: &Sim) -> String {
    sim.state()
        .urls
        .as_ref()
        .map(|u| u.keystone.clone())
        .unwrap_or_default()
}

fn common_headers(response: &mut Response, request_id: &str) {
    let headers = response.headers_mut();
    headers.insert(header::VARY, HeaderValue::from_static("X-Auth-Token"));
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert("x-openstack-request-id", value);
    }
}

fn json_response(status: StatusCode, body: Option<&Value>) -> Response {
    let bytes = body.map(|b| b.to_string()).unwrap_or_default();
    let mut response = (status, Body::from(bytes)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn reply_response(reply: Reply, request_id: &str) -> Response {
    let mut response = json_response(reply.status, reply.body.as_ref());
    if let Some(token) = reply.subject_token
        && let Ok(value) = HeaderValue::from_str(&token)
    {
        response.headers_mut().insert("x-subject-token", value);
    }
    common_headers(&mut response, request_id);
    response
}

fn error_response(error: &KeystoneError, request_id: &str, keystone_url: &str) -> Response {
    let mut response = json_response(error.status, Some(&error.body()));
    if error.status == StatusCode::UNAUTHORIZED
        && let Ok(value) = HeaderValue::from_str(&format!("Keystone uri=\"{keystone_url}\""))
    {
        // Recorded: Keystone names its own v3 URL (exchange 02).
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    common_headers(&mut response, request_id);
    response
}

/// `POST /v3/auth/tokens`: 201 with the token in `X-Subject-Token`.
fn issue_token(call: &Call<'_>) -> Result<Reply, KeystoneError> {
    let request: Value = serde_json::from_slice(call.body)
        .map_err(|_| KeystoneError::expecting("valid JSON", "request body"))?;
    let mut state = call.sim.state();
    let (id, token) = auth::authenticate(&mut state, &request)?;
    let body = token::render(&token, &state);
    state.tokens.insert(id.clone(), token);
    Ok(Reply {
        status: StatusCode::CREATED,
        body: Some(body),
        subject_token: Some(id),
    })
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty())
}

/// Checks `X-Auth-Token` (401 when missing or invalid).
fn check_caller(call: &Call<'_>) -> Result<(), KeystoneError> {
    let now = chrono::Utc::now();
    let state = call.sim.state();
    match header_str(call.headers, "x-auth-token").and_then(|t| state.tokens.get(t)) {
        Some(token) if token.is_valid(now) => Ok(()),
        _ => Err(KeystoneError::unauthorized()),
    }
}

/// `GET /v3/auth/tokens` (and `HEAD`): the subject token's body, or 404.
fn validate_token(call: &Call<'_>) -> Result<Reply, KeystoneError> {
    check_caller(call)?;
    let subject = header_str(call.headers, "x-subject-token").unwrap_or("");
    let allow_expired = call
        .query
        .iter()
        .any(|(k, v)| k == "allow_expired" && crate::query::truthy(v));
    let state = call.sim.state();
    let now = chrono::Utc::now();
    match state.tokens.get(subject) {
        Some(token) if allow_expired || token.is_valid(now) => Ok(Reply {
            status: StatusCode::OK,
            body: Some(token::render(token, &state)),
            subject_token: Some(subject.to_owned()),
        }),
        _ => Err(KeystoneError::not_found(format!(
            "Could not find token: {subject}."
        ))),
    }
}

/// `DELETE /v3/auth/tokens`: revokes the subject token (204).
fn revoke_token(call: &Call<'_>) -> Result<Reply, KeystoneError> {
    check_caller(call)?;
    let subject = header_str(call.headers, "x-subject-token").unwrap_or("");
    match call.sim.state().tokens.remove(subject) {
        Some(_) => Ok(Reply {
            status: StatusCode::NO_CONTENT,
            body: None,
            subject_token: None,
        }),
        None => Err(KeystoneError::not_found(format!(
            "Could not find token: {subject}."
        ))),
    }
}

fn version_value(keystone_url: &str) -> Value {
    json!({
        "id": "v3.14",
        "status": "stable",
        "updated": "2020-04-07T00:00:00Z",
        "links": [{"rel": "self", "href": format!("{keystone_url}/")}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}],
    })
}

/// `GET /v3`: the v3 version document.
async fn version(State(sim): State<Sim>) -> Response {
    let body = json!({"version": version_value(&keystone_url(&sim))});
    reply_response(
        Reply {
            status: StatusCode::OK,
            body: Some(body),
            subject_token: None,
        },
        &ids::request_id(),
    )
}

/// `GET /`: 300 with the one version.
async fn versions(State(sim): State<Sim>) -> Response {
    let body = json!({"versions": {"values": [version_value(&keystone_url(&sim))]}});
    reply_response(
        Reply {
            status: StatusCode::MULTIPLE_CHOICES,
            body: Some(body),
            subject_token: None,
        },
        &ids::request_id(),
    )
}

async fn not_found(State(sim): State<Sim>) -> Response {
    error_response(
        &KeystoneError::not_found("The resource could not be found."),
        &ids::request_id(),
        &keystone_url(&sim),
    )
}
