//! The Cinder v3 listener: routes, and the request pipeline every
//! operation goes through (count the call, fire a queued fault or chaos,
//! check the token as keystonemiddleware does, parse the microversion,
//! check the path's project, run the operation, add Cinder's headers). The
//! operations themselves live in one file per resource.

pub(crate) mod backups;
mod listing;
mod quotas;
mod snapshots;
mod versions;
mod volumes;

use std::future::Future;
use std::pin::Pin;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;

use crate::errors::{CinderError, KeystoneError};
use crate::faults::Act;
use crate::microversion::{self, Microversion, VersionError};
use crate::server;
use crate::state::Token;
use crate::{Op, Sim, ids};

/// Largest request body read; Cinder's `osapi_max_request_body_size` is
/// 112 KiB, backup bodies are far smaller.
const BODY_LIMIT: usize = 1024 * 1024;

/// The Cinder router.
pub(crate) fn router(sim: Sim) -> Router {
    let project = "/v3/{project_id}";
    Router::new()
        .route(
            "/",
            get(endpoint(Op::Versions, Access::Public, versions::root)),
        )
        .route(
            "/v3",
            get(endpoint(Op::Versions, Access::Token, versions::v3)),
        )
        .route(
            "/v3/",
            get(endpoint(Op::Versions, Access::Token, versions::v3)),
        )
        .route(
            &format!("{project}/snapshots"),
            get(endpoint(Op::SnapshotList, Access::Project, snapshots::list)),
        )
        .route(
            &format!("{project}/snapshots/detail"),
            get(endpoint(
                Op::SnapshotDetail,
                Access::Project,
                snapshots::detail,
            )),
        )
        .route(
            &format!("{project}/snapshots/{{id}}"),
            get(endpoint(Op::SnapshotShow, Access::Project, snapshots::show)),
        )
        .route(
            &format!("{project}/snapshots/{{id}}/action"),
            post(endpoint(
                Op::SnapshotAction,
                Access::Project,
                snapshots::action,
            )),
        )
        .route(
            &format!("{project}/volumes/{{id}}"),
            get(endpoint(Op::VolumeShow, Access::Project, volumes::show)),
        )
        .route(
            &format!("{project}/backups"),
            get(endpoint(Op::BackupList, Access::Project, backups::list)).post(endpoint(
                Op::BackupCreate,
                Access::Project,
                backups::create,
            )),
        )
        .route(
            &format!("{project}/backups/detail"),
            get(endpoint(Op::BackupDetail, Access::Project, backups::detail)),
        )
        .route(
            &format!("{project}/backups/{{id}}"),
            get(endpoint(Op::BackupShow, Access::Project, backups::show)).delete(endpoint(
                Op::BackupDelete,
                Access::Project,
                backups::delete,
            )),
        )
        .route(
            &format!("{project}/os-quota-sets/{{id}}"),
            get(endpoint(Op::QuotaShow, Access::Project, quotas::show)).put(endpoint(
                Op::QuotaUpdate,
                Access::Project,
                quotas::update,
            )),
        )
        .method_not_allowed_fallback(bad_method)
        .fallback(not_found)
        .with_state(sim)
}

/// What a route asks of the caller before the operation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Nothing: `GET /` sits outside keystonemiddleware (exchange 33).
    Public,
    /// A valid token (`GET /v3/`, exchange 34).
    Token,
    /// A valid token of the path's project (exchanges 60-65).
    Project,
}

/// What a Cinder operation answers when it succeeds.
pub(crate) struct Reply {
    /// The success status (200, 202, 300).
    pub(crate) status: StatusCode,
    /// The JSON body; `None` for Cinder's empty 202s.
    pub(crate) body: Option<Value>,
}

impl Reply {
    /// 200 with a body.
    pub(crate) fn ok(body: Value) -> Reply {
        Reply {
            status: StatusCode::OK,
            body: Some(body),
        }
    }

    /// 202 with an optional body.
    pub(crate) fn accepted(body: Option<Value>) -> Reply {
        Reply {
            status: StatusCode::ACCEPTED,
            body,
        }
    }
}

/// One request as the operations see it, checked by the pipeline.
pub(crate) struct Call<'a> {
    /// The simulator whose state the operation reads and changes.
    pub(crate) sim: &'a Sim,
    /// The caller's token; `None` only on public routes.
    pub(crate) token: Option<&'a Token>,
    /// The project of the path (empty on version routes).
    pub(crate) project_id: &'a str,
    /// The resource id of the path (the quota target for quota routes).
    pub(crate) id: &'a str,
    /// The microversion served.
    pub(crate) version: Microversion,
    /// The decoded query, in request order.
    pub(crate) query: &'a [(String, String)],
    /// The raw request body.
    pub(crate) body: &'a Bytes,
    /// `http://127.0.0.1:P`, the base of every link Cinder writes.
    pub(crate) base_url: &'a str,
    /// The request path, for pagination links.
    pub(crate) path: &'a str,
}

impl Call<'_> {
    /// Whether the caller has the `admin` role (a cloud admin to Cinder).
    pub(crate) fn is_admin(&self) -> bool {
        self.token.is_some_and(|t| t.has_role("admin"))
    }

    /// Cinder's default policies let any of `reader`, `member` and `admin`
    /// read a project's resources (exchange 77).
    pub(crate) fn check_read(&self, rule: &str) -> Result<(), CinderError> {
        let allowed = self
            .token
            .is_some_and(|t| t.has_role("reader") || t.has_role("member") || t.has_role("admin"));
        if allowed {
            Ok(())
        } else {
            Err(CinderError::policy(rule))
        }
    }

    /// Writes need `member` (or `admin`): a reader-only token is refused
    /// (exchange 76).
    pub(crate) fn check_write(&self, rule: &str) -> Result<(), CinderError> {
        let allowed = self
            .token
            .is_some_and(|t| t.has_role("member") || t.has_role("admin"));
        if allowed {
            Ok(())
        } else {
            Err(CinderError::policy(rule))
        }
    }

    /// Admin-only rules (reset status, quota update).
    pub(crate) fn check_admin(&self, rule: &str) -> Result<(), CinderError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(CinderError::policy(rule))
        }
    }
}

type Work = fn(&Call<'_>) -> Result<Reply, CinderError>;
type BoxResponse = Pin<Box<dyn Future<Output = Response> + Send>>;
type PathParams = Result<Path<Vec<(String, String)>>, PathRejection>;

fn endpoint(
    op: Op,
    access: Access,
    work: Work,
) -> impl Fn(State<Sim>, PathParams, Request) -> BoxResponse + Clone + Send + Sync + 'static {
    // Keystone's operations have their own listener and error shape.
    debug_assert!(!op.is_keystone(), "{} is not a Cinder operation", op.name());
    move |State(sim): State<Sim>, params: PathParams, request: Request| {
        // A path that does not decode (bad UTF-8) matches no resource.
        let params = params.map(|Path(p)| p).unwrap_or_default();
        // Cinder finishes a request whose client went away (a timed-out
        // POST still makes its backup): the work runs in a task of its own
        // that a dropped connection does not cancel.
        Box::pin(async move {
            tokio::spawn(run(sim, op, access, work, params, request))
                .await
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
        })
    }
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> &'a str {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

/// Headers and status of an answer, decided by the pipeline.
struct Answer<'a> {
    request_id: &'a str,
    /// `Some` adds `OpenStack-API-Version: volume <text>` and `Vary`.
    version: Option<String>,
}

/// Counts the call, answers it, and counts its answer's status (none if
/// its connection was cut).
async fn run(
    sim: Sim,
    op: Op,
    access: Access,
    work: Work,
    params: Vec<(String, String)>,
    request: Request,
) -> Response {
    server::counted(&sim, op, request, |request| {
        respond(&sim, op, access, work, &params, request)
    })
    .await
}

/// Fires a queued fault or chaos, checks the caller, runs the operation
/// and adds Cinder's headers. `true` with the answer: the connection is to
/// be cut instead (before the work, or after it for a lost answer).
async fn respond(
    sim: &Sim,
    op: Op,
    access: Access,
    work: Work,
    params: &[(String, String)],
    request: Request,
) -> (Response, bool) {
    let (parts, body) = request.into_parts();
    let request_id = ids::request_id();

    let project = Some(param(params, "project_id")).filter(|p| !p.is_empty());
    let misbehaviour = sim.misbehaviour(op, project);
    if let Some(delay) = misbehaviour.delay {
        tokio::time::sleep(delay).await;
    }
    let mut drop_after = false;
    match misbehaviour.act {
        Some(Act::Status(code)) => {
            let answer = Answer {
                request_id: &request_id,
                version: None,
            };
            return (
                error_response(&CinderError::for_status(code), &answer),
                false,
            );
        }
        Some(Act::BareStatus(code)) => return (server::bare_answer(code), false),
        Some(Act::DropBeforeWork) => {
            return (StatusCode::INTERNAL_SERVER_ERROR.into_response(), true);
        }
        Some(Act::DropAfterWork) => drop_after = true,
        None => {}
    }

    let response = serve(sim, access, work, params, &parts, body, &request_id).await;
    (response, drop_after)
}

/// The checks and the operation, in Cinder's order: keystonemiddleware
/// first (401 before anything else, exchanges 60-62), then the version
/// header (Cinder's WSGI resource parses it before dispatch, exchanges
/// 52-54), then the project of the URL (exchanges 63-64).
async fn serve(
    sim: &Sim,
    access: Access,
    work: Work,
    params: &[(String, String)],
    parts: &axum::http::request::Parts,
    body: Body,
    request_id: &str,
) -> Response {
    let token = if access == Access::Public {
        None
    } else {
        match valid_token(sim, &parts.headers) {
            Some(token) => Some(token),
            None => return unauthorized(sim, request_id),
        }
    };

    let max = sim.state().max_microversion;
    let version = match microversion::from_headers(&parts.headers, max) {
        Ok(version) => version,
        Err(error) => {
            let version = match &error {
                // 406 echoes the version asked for (exchange 52) ...
                VersionError::Unsupported { requested, .. } => Some(requested.clone()),
                // ... a malformed one gets no version headers (exchange 53).
                VersionError::Malformed(_) => None,
            };
            let cinder_error = match &error {
                VersionError::Unsupported { .. } => CinderError::not_acceptable(error.to_string()),
                VersionError::Malformed(_) => CinderError::bad_request(error.to_string()),
            };
            let answer = Answer {
                request_id,
                version,
            };
            return error_response(&cinder_error, &answer);
        }
    };
    let answer = Answer {
        request_id,
        version: Some(version.to_string()),
    };

    let project_id = param(params, "project_id");
    if access == Access::Project && token.as_ref().is_none_or(|t| t.project_id != project_id) {
        return error_response(&CinderError::bad_request("Malformed request url"), &answer);
    }

    let body = axum::body::to_bytes(body, BODY_LIMIT)
        .await
        .unwrap_or_default();
    let query = crate::query::parse(parts.uri.query());
    let base_url = cinder_url(sim);
    let call = Call {
        sim,
        token: token.as_ref(),
        project_id,
        id: param(params, "id"),
        version,
        query: &query,
        body: &body,
        base_url: &base_url,
        path: parts.uri.path(),
    };
    match work(&call) {
        Ok(reply) => reply_response(reply, &answer),
        Err(error) => error_response(&error, &answer),
    }
}

/// The token of `X-Auth-Token`, if it is known and not expired.
fn valid_token(sim: &Sim, headers: &HeaderMap) -> Option<Token> {
    let id = headers
        .get("x-auth-token")
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty())?;
    let state = sim.state();
    state
        .tokens
        .get(id)
        .filter(|t| t.is_valid(chrono::Utc::now()))
        .cloned()
}

/// Cinder's own base URL, `http://127.0.0.1:P`.
fn cinder_url(sim: &Sim) -> String {
    sim.state()
        .urls
        .as_ref()
        .map(|u| u.cinder.clone())
        .unwrap_or_default()
}

/// keystonemiddleware's 401: Keystone's error shape, `WWW-Authenticate`
/// naming Keystone's root (not its `/v3`), a request id, and none of
/// Cinder's version headers (exchanges 60-62).
fn unauthorized(sim: &Sim, request_id: &str) -> Response {
    let keystone = sim
        .state()
        .urls
        .as_ref()
        .map(|u| u.keystone.clone())
        .unwrap_or_default();
    let root = keystone.strip_suffix("/v3").unwrap_or(&keystone).to_owned();
    let error = KeystoneError::unauthorized();
    let mut response = json_response(error.status, Some(&error.body()));
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&format!("Keystone uri=\"{root}\"")) {
        headers.insert(header::WWW_AUTHENTICATE, value);
    }
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert("x-openstack-request-id", value);
    }
    response
}

/// A JSON answer. Cinder labels even its empty 202s `application/json`
/// (exchanges 27, 71).
fn json_response(status: StatusCode, body: Option<&Value>) -> Response {
    let bytes = body.map(Value::to_string).unwrap_or_default();
    let mut response = (status, Body::from(bytes)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Cinder's headers: the request id twice (`x-compute-request-id` is the
/// legacy name, exchanges 06, 63) and the version served with `Vary`.
fn cinder_headers(response: &mut Response, answer: &Answer<'_>) {
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(answer.request_id) {
        headers.insert("x-compute-request-id", value.clone());
        headers.insert("x-openstack-request-id", value);
    }
    if let Some(version) = &answer.version
        && let Ok(value) = HeaderValue::from_str(&format!("volume {version}"))
    {
        headers.insert("openstack-api-version", value);
        headers.insert(
            header::VARY,
            HeaderValue::from_static("OpenStack-API-Version"),
        );
    }
}

fn reply_response(reply: Reply, answer: &Answer<'_>) -> Response {
    let mut response = json_response(reply.status, reply.body.as_ref());
    cinder_headers(&mut response, answer);
    response
}

fn error_response(error: &CinderError, answer: &Answer<'_>) -> Response {
    let mut response = json_response(error.status, Some(&error.body()));
    cinder_headers(&mut response, answer);
    if error.status == StatusCode::PAYLOAD_TOO_LARGE {
        // Recorded on every quota refusal (exchanges 67, 69).
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("0"));
    }
    response
}

/// A known path with a method it does not have.
async fn bad_method() -> Response {
    let answer = Answer {
        request_id: &ids::request_id(),
        version: None,
    };
    error_response(&CinderError::bad_method(), &answer)
}

/// A path Cinder has no route for.
async fn not_found() -> Response {
    let answer = Answer {
        request_id: &ids::request_id(),
        version: None,
    };
    error_response(
        &CinderError::not_found("The resource could not be found."),
        &answer,
    )
}
