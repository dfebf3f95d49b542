//! `GET /events`: a tenant's job events as they happen, as Server-Sent
//! Events, resumable with `Last-Event-ID`.

use std::convert::Infallible;

use axum::{
    extract::State,
    http::{HeaderMap, HeaderValue, header},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{AppState, EVENTS_TAG, error::ApiError, extract::ApiQuery};
use crate::{
    auth::Caller,
    jobs::{
        events::{EventFilter, EventKind, Followed, JobEvent},
        model::JobState,
    },
    problem::Problem,
};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(stream_events))
}

/// What happened to the job: `job.created` (recorded), `job.submitted` (a
/// request for its backup is being sent to Cinder), `job.running` (Cinder
/// has the backup), `job.succeeded`, `job.failed`, `job.cancelled`,
/// `job.retry_scheduled` (a submission failed for now; `next_attempt_at`
/// says when the next one is), `job.removed` (Cinder refused the request
/// while its caller waited: the caller got the refusal, and the job no
/// longer exists), `job.estimate_changed` (a running job's
/// `expected_completion_at` changed).
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub enum JobEventType {
    /// The job was recorded.
    #[serde(rename = "job.created")]
    Created,
    /// A request for the backup is being sent to Cinder.
    #[serde(rename = "job.submitted")]
    Submitted,
    /// Cinder has the backup.
    #[serde(rename = "job.running")]
    Running,
    /// The backup is available.
    #[serde(rename = "job.succeeded")]
    Succeeded,
    /// The job failed.
    #[serde(rename = "job.failed")]
    Failed,
    /// The job was cancelled.
    #[serde(rename = "job.cancelled")]
    Cancelled,
    /// The job waits for its next attempt.
    #[serde(rename = "job.retry_scheduled")]
    RetryScheduled,
    /// The job was refused by Cinder while its caller waited, and removed.
    #[serde(rename = "job.removed")]
    Removed,
    /// The running job's expected completion changed.
    #[serde(rename = "job.estimate_changed")]
    EstimateChanged,
}

impl JobEventType {
    /// The type named `name` (`job.succeeded`...).
    pub fn from_name(name: &str) -> Option<JobEventType> {
        EventKind::ALL
            .into_iter()
            .find(|kind| kind.event_type() == name)
            .map(JobEventType::from)
    }
}

impl From<EventKind> for JobEventType {
    fn from(kind: EventKind) -> Self {
        match kind {
            EventKind::Created => JobEventType::Created,
            EventKind::Submitted => JobEventType::Submitted,
            EventKind::Running => JobEventType::Running,
            EventKind::Succeeded => JobEventType::Succeeded,
            EventKind::Failed => JobEventType::Failed,
            EventKind::Cancelled => JobEventType::Cancelled,
            EventKind::RetryScheduled => JobEventType::RetryScheduled,
            EventKind::Removed => JobEventType::Removed,
            EventKind::EstimateChanged => JobEventType::EstimateChanged,
        }
    }
}

/// One event: its type, when it happened, and the job right after the
/// change. Each is the `data` of one Server-Sent Event, whose `id` is the
/// event's number among the tenant's events and whose `event` is `type`.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobEventView {
    /// What happened.
    #[serde(rename = "type")]
    pub kind: JobEventType,
    /// The event's number among the tenant's events (the SSE `id`): they
    /// increase by one per event, so a webhook receiver can put events that
    /// came out of order back in order.
    #[schema(minimum = 1)]
    pub event_id: i64,
    /// When the change was made.
    pub timestamp: DateTime<Utc>,
    /// The job right after the change.
    pub data: JobEventData,
}

/// The job as an event carries it.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobEventData {
    /// The job (`GET /jobs/{job_id}` has all of it, while it exists).
    #[schema(value_type = String, format = Uuid)]
    pub job_id: String,
    /// The job's snapshot.
    pub snapshot_id: String,
    /// The job's state after the change.
    pub state: JobState,
    /// The Cinder backup, once Cinder has it.
    #[schema(required = true)]
    pub backup_id: Option<String>,
    /// Why the job failed; while queued, the last transient failure.
    #[schema(required = true)]
    pub error: Option<Problem>,
    /// When a queued job will be submitted again.
    #[schema(required = true)]
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// While running: when the backup is expected to complete, from this
    /// tenant's earlier backups of a similar size; `null` without such
    /// history.
    #[schema(required = true)]
    pub expected_completion_at: Option<DateTime<Utc>>,
}

impl From<JobEvent> for JobEventView {
    fn from(event: JobEvent) -> Self {
        JobEventView {
            kind: event.kind.into(),
            event_id: event.seq,
            timestamp: event.occurred_at,
            data: JobEventData {
                job_id: event.job_id.to_string(),
                snapshot_id: event.snapshot_id,
                state: event.state,
                backup_id: event.backup_id,
                error: event.error,
                next_attempt_at: event.next_attempt_at,
                expected_completion_at: event.expected_completion_at,
            },
        }
    }
}

/// Query of `GET /events`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Only this job's events.
    #[param(value_type = Option<String>, format = Uuid)]
    pub job_id: Option<String>,
    /// Only events of jobs of this snapshot.
    #[param(min_length = 1, max_length = 255)]
    pub snapshot_id: Option<String>,
    /// Resume after this event, as the `Last-Event-ID` header does (for
    /// clients that cannot set it on their first connection); the header
    /// wins when both are sent.
    #[param(minimum = 0)]
    pub last_event_id: Option<u64>,
}

/// The tenant's job events, as they happen.
///
/// A Server-Sent Events stream (`text/event-stream`): each event's `id` is
/// its number among the tenant's events (they increase by one per event),
/// its `event` is its type (`job.succeeded`...), and its `data` is a
/// `JobEventView`. An idle stream carries a comment line every
/// `--event-heartbeat` (15 s by default).
///
/// Without `Last-Event-ID` the stream starts with the next event. With it
/// (as browsers' `EventSource` send it when they reconnect), the stream
/// starts right after that event: no event is missed or repeated, whichever
/// replica wrote it. `Last-Event-ID: 0` gives every event from the first.
/// Events are kept for `--event-retention` (7 days by default): resuming
/// from an event whose successors were purged is `410 events-expired` (list
/// the jobs, then open the stream without `Last-Event-ID`); an id past the
/// tenant's latest event is `400` (both for `last_event_id` too).
///
/// The stream opens with a frame holding only an `id` (where it starts),
/// and a filtered stream sends one when it has passed events its filter
/// left out: no event is dispatched, but a reconnecting `EventSource`
/// resumes from there (clients of their own should keep the `id` of every
/// frame, with data or without).
///
/// A tenant may have `--max-event-streams` streams open per replica (16 by
/// default); past it, `429 too-many-event-streams`. The stream ends when
/// the gateway stops; reconnect with the last id seen.
#[utoipa::path(
    get,
    path = "/events",
    tag = EVENTS_TAG,
    operation_id = "stream_events",
    params(
        EventsQuery,
        ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this event: the `id` of the last event received"),
    ),
    responses(
        (status = 200, description = "The stream of events; each event's data is a JobEventView",
            content(
                (String = "text/event-stream", example = json!("id: 6\n\nid: 7\nevent: job.succeeded\ndata: {\"type\":\"job.succeeded\",\"event_id\":7,\"timestamp\":\"2026-12-02T10:15:03.412Z\",\"data\":{\"job_id\":\"0193a0c4-7b3e-7f00-8000-000000000001\",\"snapshot_id\":\"000005a9-0000-4000-8000-a00000000001\",\"state\":\"succeeded\",\"backup_id\":\"7c1f0c1e-5a43-4c52-9d55-0f3f7e1fb0a1\",\"error\":null,\"next_attempt_at\":null,\"expected_completion_at\":null}}\n\n")),
            ),
            headers(("Cache-Control" = String, description = "`no-cache`"))),
    ),
    security(("bearer" = ["backups:read"]))
)]
pub async fn stream_events(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<EventsQuery>,
) -> Result<Response, ApiError> {
    let job_id = query
        .job_id
        .as_deref()
        .map(|id| {
            id.parse()
                .map_err(|_| ApiError::BadRequest("`job_id` must be a job id (a UUID)".to_owned()))
        })
        .transpose()?;
    let after = match headers.get("last-event-id") {
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiError::BadRequest(
                        "`Last-Event-ID` must be the id of an event (a whole number)".to_owned(),
                    )
                })?,
        ),
        None => query.last_event_id,
    };
    let filter = EventFilter {
        job_id,
        snapshot_id: query.snapshot_id,
    };
    let follower = state
        .jobs
        .follow_events(&caller.tenant, after, filter)
        .await?;
    let events = futures_util::stream::unfold(follower, |mut follower| async move {
        let frame = match follower.next().await? {
            Followed::Event(event) => sse_event(*event),
            // An `id` alone: no event, but the client's `Last-Event-ID`.
            Followed::Position(seq) => Event::default().id(seq.to_string()),
        };
        Some((Ok::<_, Infallible>(frame), follower))
    });
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(state.event_heartbeat))
        .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Proxies that buffer answers (nginx) pass this one through as it comes.
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// What the annotations cannot say of `GET /events`: its `Last-Event-ID`
/// header is a plain integer when sent (an optional header is absent, never
/// null).
pub(super) fn document_stream(spec: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{
        RefOr,
        schema::{ObjectBuilder, Type},
    };
    let Some(get) = super::contract::operation_mut(spec, "/events", "get") else {
        return;
    };
    for parameter in get.parameters.iter_mut().flatten() {
        if let RefOr::T(parameter) = parameter
            && parameter.name == "Last-Event-ID"
        {
            parameter.schema = Some(RefOr::T(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                        utoipa::openapi::KnownFormat::Int64,
                    )))
                    .minimum(Some(0))
                    .into(),
            ));
        }
    }
}

/// One event as Server-Sent Events carry it.
fn sse_event(event: JobEvent) -> Event {
    let id = event.seq.to_string();
    let name = event.kind.event_type();
    let data = serde_json::to_string(&JobEventView::from(event)).unwrap_or_default();
    Event::default().id(id).event(name).data(data)
}
