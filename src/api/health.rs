//! Liveness and readiness probes.

use std::sync::atomic::Ordering;

use axum::{Json, extract::State};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{AppState, HEALTH_TAG, error::ApiError};
use crate::problem::{Problem, ProblemKind};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
}

/// A probe's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthStatus {
    /// `ok` (alive) or `ready`.
    pub status: &'static str,
    /// Readiness only: ids of unfinished jobs whose stored rows cannot be
    /// read. They are skipped (every other job carries on) and need an
    /// operator.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreadable_jobs: Option<Vec<String>>,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = HEALTH_TAG, operation_id = "healthz",
    responses((status = 200, description = "Alive", body = HealthStatus),
        (status = 431, description = "The request line and headers are larger than the gateway reads", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn healthz() -> Json<HealthStatus> {
    Json(HealthStatus {
        status: "ok",
        unreadable_jobs: None,
    })
}

/// Readiness: the job store answers and the worker runs.
#[utoipa::path(get, path = "/readyz", tag = HEALTH_TAG, operation_id = "readyz",
    responses(
        (status = 200, description = "Ready", body = HealthStatus),
        (status = 503, description = "The store does not answer or the worker stopped", body = Problem, content_type = "application/problem+json"),
        (status = 431, description = "The request line and headers are larger than the gateway reads", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<HealthStatus>, ApiError> {
    if let Err(e) = state.jobs.store().ping().await {
        tracing::warn!(error = %e, "readiness: store unavailable");
        return Err(ApiError::from(Problem::new(
            ProblemKind::StoreUnavailable,
            "the job store does not answer",
        )));
    }
    if !state.worker_alive.load(Ordering::Relaxed) {
        return Err(ApiError::from(
            Problem::new(ProblemKind::Internal, "the worker is not running").with_status(503),
        ));
    }
    Ok(Json(HealthStatus {
        status: "ready",
        unreadable_jobs: Some(state.worker.unreadable_jobs()),
    }))
}
