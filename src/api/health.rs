//! Liveness and readiness probes.

use std::sync::atomic::Ordering;

use std::collections::BTreeMap;

use axum::{Json, extract::State};
use chrono::{DateTime, Utc};
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
    /// Readiness only: the job store (`sqlite` or `postgres`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "postgres")]
    pub store: Option<&'static str>,
    /// Readiness only: this replica's name in the store's tenant leases.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
    /// Readiness only: the tenants whose jobs this replica works now (it
    /// holds their leases). Other replicas on the same store work the
    /// rest; a tenant with no unfinished job is held by none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leased_tenants: Option<Vec<String>>,
    /// Readiness only: per tenant, what its cloud last answered. An
    /// upstream outage shows here and in the logs; it does not make the
    /// gateway unready (every replica would leave the load balancer, for
    /// nothing: jobs wait and resume by themselves).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenants: Option<BTreeMap<String, TenantHealth>>,
}

/// What a tenant's cloud last answered.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantHealth {
    /// The clouds.yaml entry acting for the tenant.
    pub cloud: String,
    /// When Keystone last gave this tenant a token.
    #[schema(required = true)]
    pub last_keystone_success: Option<DateTime<Utc>>,
    /// When Cinder last answered for this tenant (any answer but a 5xx).
    #[schema(required = true)]
    pub last_cinder_success: Option<DateTime<Utc>>,
    /// The last failure of Keystone or Cinder for this tenant.
    #[schema(required = true)]
    pub last_error: Option<UpstreamError>,
}

/// A failed call to the tenant's cloud.
#[derive(Debug, Serialize, ToSchema)]
pub struct UpstreamError {
    /// When.
    pub at: DateTime<Utc>,
    /// `keystone` or `cinder`.
    pub service: &'static str,
    /// What went wrong.
    pub detail: String,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = HEALTH_TAG, operation_id = "get_liveness",
    responses((status = 200, description = "Alive", body = HealthStatus)))]
pub async fn healthz() -> Json<HealthStatus> {
    Json(HealthStatus {
        status: "ok",
        unreadable_jobs: None,
        store: None,
        replica: None,
        leased_tenants: None,
        tenants: None,
    })
}

/// Readiness: the job store answers and the worker runs.
#[utoipa::path(get, path = "/readyz", tag = HEALTH_TAG, operation_id = "get_readiness",
    responses(
        (status = 200, description = "Ready", body = HealthStatus),
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
        return Err(ApiError::from(Problem::new(
            ProblemKind::WorkerStopped,
            "the worker is not running",
        )));
    }
    let leases = state.worker.leases();
    let mut leased: Vec<String> = leases
        .held()
        .iter()
        .flat_map(|tenant| state.jobs.tenants_of(&tenant.cloud).map(str::to_owned))
        .collect();
    leased.sort();
    leased.dedup();
    Ok(Json(HealthStatus {
        status: "ready",
        unreadable_jobs: Some(state.worker.unreadable_jobs()),
        store: Some(state.jobs.store().kind()),
        replica: Some(leases.replica().to_owned()),
        leased_tenants: Some(leased),
        tenants: Some(
            state
                .jobs
                .upstream_health()
                .into_iter()
                .map(|(tenant, (cloud, health))| {
                    (
                        tenant,
                        TenantHealth {
                            cloud,
                            last_keystone_success: health.last_keystone_success,
                            last_cinder_success: health.last_cinder_success,
                            last_error: health.last_error.map(|e| UpstreamError {
                                at: e.at,
                                service: e.service,
                                detail: e.detail,
                            }),
                        },
                    )
                })
                .collect(),
        ),
    }))
}
